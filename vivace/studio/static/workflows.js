// Workflows: the graph, a start form generated from the input's JSON Schema, live step
// status while a run goes, resume forms from each suspended step's resume schema, the run
// history with each step's input, output and timing, and time travel from any step.
// #/workflows/<id> shows a workflow, #/workflows/<id>/<run_id> one of its runs.
import { get, post, stream } from "./api.js";
import { clear, h, json, ms, when } from "./ui.js";
import { schemaForm } from "./form.js";

const nodeOf = (path) => path.replace(/\[\d+\]/g, "[]");  // tick[3] -> the graph's tick[]
const CONTAINERS = new Set(["parallel", "branch", "loop", "foreach", "workflow"]);

export async function workflowsScreen(main, [workflowId, runId]) {
  const { workflows } = await get("/workflows");
  if (!workflows.length) {
    clear(main, h("section", { class: "pad" }, h("h1", {}, "Workflows"), h("p", { class: "muted" }, "This server has no workflows.")));
    return;
  }
  const wfId = workflows.some((w) => w.id === workflowId) ? workflowId : workflows[0].id;
  const wf = await get(`/workflows/${encodeURIComponent(wfId)}`);
  const runsList = h("ul", { class: "list", id: "runs" });
  const side = h("aside", { class: "side" },
    h("label", { for: "workflow-select" }, "Workflow"),
    h("select", { id: "workflow-select", onchange: (e) => { location.hash = `#/workflows/${encodeURIComponent(e.target.value)}`; } },
      workflows.map((w) => h("option", { value: w.id, selected: w.id === wfId }, w.id))),
    h("p", { class: "muted small" }, wf.description || `${Object.keys(wf.steps || {}).length} steps, engine ${wf.engine}`),
    h("div", { class: "row" }, h("h3", {}, "Runs"), h("a", { href: `#/workflows/${encodeURIComponent(wfId)}`, id: "new-run" }, "New run")),
    runsList);
  const graph = h("div", { class: "wf-graph", id: "wf-graph" }, renderGraph(wf.graph));
  const steps = h("div", { id: "wf-steps" });
  const panel = h("aside", { class: "panel", id: "wf-panel" });
  clear(main, h("div", { class: "agents" }, side,
    h("section", { class: "pad wf-center" }, h("h1", {}, wf.id), graph, steps), panel));
  const view = { wf, wfId, graph, steps, panel, runsList, live: null };
  loadRuns(view, runId);
  if (runId) await showRun(view, runId);
  else startForm(view);
}

// -- the graph ------------------------------------------------------------------------------

function renderGraph(graph) {
  const children = {};
  const top = [];
  for (const n of graph.nodes) {
    if (n.parent) (children[n.parent] ||= []).push(n);
    else top.push(n);
  }
  const box = (n) => {
    const kids = children[n.id] || [];
    const title = n.kind === "map" ? "map" : n.label;
    const el = h("div", { class: `wf-node kind-${n.kind}`, dataset: { node: n.id } },
      h("div", { class: "wf-node-head" },
        h("span", { class: "wf-label" }, title),
        h("span", { class: "wf-kind muted small" }, n.kind === "function" ? "" : n.kind),
        h("span", { class: "wf-status small" })),
      n.resume ? h("div", { class: "muted small" }, "can wait for a person") : null);
    if (kids.length && CONTAINERS.has(n.kind)) {
      const across = n.kind === "parallel" || n.kind === "branch";
      el.append(h("div", { class: `wf-children ${across ? "across" : ""}` }, kids.map(box)));
    }
    return el;
  };
  const out = [];
  top.forEach((n, i) => {
    if (i) out.push(h("div", { class: "wf-arrow" }, "↓"));
    out.push(box(n));
  });
  return out;
}

function setNode(view, path, status, note) {
  const el = view.graph.querySelector(`.wf-node[data-node="${CSS.escape(nodeOf(path))}"]`);
  if (!el) return;
  el.dataset.status = status;
  const label = el.querySelector(":scope > .wf-node-head .wf-status");
  label.textContent = note ? `${status} ${note}` : status;
  label.className = `wf-status small status ${status}`;
}

function clearNodes(view) {
  for (const el of view.graph.querySelectorAll(".wf-node")) {
    delete el.dataset.status;
    const label = el.querySelector(":scope > .wf-node-head .wf-status");
    label.textContent = "";
    label.className = "wf-status small";
  }
}

// -- history --------------------------------------------------------------------------------

async function loadRuns(view, selected) {
  try {
    const { runs } = await get(`/workflows/${encodeURIComponent(view.wfId)}/runs?limit=50`);
    clear(view.runsList, runs.length ? runs.map((r) => h("li", {},
      h("a", { href: `#/workflows/${encodeURIComponent(view.wfId)}/${r.run_id}`, class: r.run_id === selected ? "active" : "", dataset: { runId: r.run_id } },
        h("span", { class: `status ${r.status}` }, r.status), " ", when(r.created_at || r.updated_at)))) : h("li", { class: "muted" }, "no runs yet"));
  } catch (e) {
    clear(view.runsList, h("li", { class: "error" }, e.message));
  }
}

// -- starting a run -------------------------------------------------------------------------

function inputForm(schema, prefix) {
  // the form is built from an object schema; any other input is one field named "input"
  const isObject = schema && schema.type === "object" && schema.properties;
  const form = schemaForm(isObject ? schema : { type: "object", properties: { input: schema || {} }, required: ["input"] }, { prefix });
  return { el: form.el, read: () => (isObject ? form.read() : form.read().input) };
}

function startForm(view) {
  const form = inputForm(view.wf.input_schema, "in");
  const status = h("p", { class: "muted small", id: "start-status" });
  clearNodes(view);
  clear(view.steps);
  clear(view.panel,
    h("h3", {}, "Start a run"),
    h("form", { id: "start-form", onsubmit: (e) => { e.preventDefault(); start(view, form, status); } },
      form.el, h("button", { type: "submit", class: "primary", id: "start-run" }, "Start"), status),
    h("details", {}, h("summary", { class: "muted small" }, "Input schema"), h("pre", {}, json(view.wf.input_schema))));
}

async function start(view, form, status) {
  let input;
  try { input = form.read(); } catch (e) { status.textContent = `invalid input: ${e.message}`; return; }
  status.textContent = "running...";
  clearNodes(view);
  await follow(view, `/workflows/${encodeURIComponent(view.wfId)}/runs`, { input, stream: true }, status);
}

// a run's live events: each step's status on the graph as it changes
async function follow(view, path, body, status) {
  let runId = null;
  let last = null;
  try {
    await stream(path, body, (e) => {
      runId = e.run_id || runId;
      last = e;
      switch (e.type) {
        case "step_started": setNode(view, e.path, "running", e.attempt > 1 ? `(attempt ${e.attempt})` : ""); break;
        case "step_completed": setNode(view, e.path, "completed", ms(e.duration * 1000)); break;
        case "step_failed": setNode(view, e.path, "failed"); break;
        case "step_retrying": setNode(view, e.path, "retrying", `(attempt ${e.attempt})`); break;
        case "step_suspended": setNode(view, e.path, "suspended"); break;
        case "step_skipped": setNode(view, e.path, "skipped"); break;
        default: break;
      }
      if (status) status.textContent = e.type.replace("_", " ");
    });
  } catch (e) {
    if (status) { status.textContent = e.message; status.className = "error"; }
    return;
  }
  if (runId && last) location.hash = `#/workflows/${encodeURIComponent(view.wfId)}/${runId}`;
}

// -- one run --------------------------------------------------------------------------------

async function showRun(view, runId) {
  const base = `/workflows/${encodeURIComponent(view.wfId)}/runs/${encodeURIComponent(runId)}`;
  let run;
  try { run = await get(base); } catch (e) {
    clear(view.panel, h("p", { class: "error" }, e.message));
    return;
  }
  const inputs = await get(`/studio/api/workflows/${encodeURIComponent(view.wfId)}/runs/${encodeURIComponent(runId)}/inputs`)
    .then((r) => r.inputs).catch(() => ({}));
  clearNodes(view);
  const records = Object.entries(run.steps || {});
  const perNode = {};
  for (const [path, r] of records) (perNode[nodeOf(path)] ||= []).push([path, r]);
  for (const [node, list] of Object.entries(perNode)) {
    const [path, r] = list[list.length - 1];
    const timed = r.status === "completed" || r.status === "failed";
    const note = list.length > 1 ? `x${list.length}` : (timed && r.duration != null ? ms(r.duration * 1000) : "");
    setNode(view, path, r.status, note);
  }
  const finished = !["running", "suspended", "waiting"].includes(run.status);
  clear(view.steps,
    h("h3", {}, "Steps"),
    h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["Step", "Status", "Attempts", "Took", "Input", "Output", ""].map((c) => h("th", {}, c)))),
      h("tbody", { id: "step-rows" }, records.map(([path, r]) => h("tr", { class: "step-row", dataset: { path } },
        h("td", { class: "mono" }, path),
        h("td", {}, h("span", { class: `status ${r.status}` }, r.status)),
        h("td", {}, r.attempts ?? ""),
        h("td", {}, r.duration != null ? ms(r.duration * 1000) : ""),
        h("td", {}, h("pre", { class: "step-input" }, path in inputs ? json(inputs[path]) : "")),
        h("td", {}, h("pre", { class: "step-output" }, r.error ? (r.error.message || json(r.error)) : json(r.output ?? r.payload ?? null))),
        h("td", {}, finished && r.status === "completed" ? h("button", { class: "time-travel", title: "Run again from this step (a new run; the steps before it keep their outputs)",
          onclick: () => timeTravel(view, runId, path) }, "Re-run from here") : null)))))
  );
  const resumeForms = (run.suspended || []).map((s) => resumeForm(view, run, s));
  const trace = run.trace_id ? h("a", { href: `#/traces/${run.trace_id}`, class: "trace-link" }, "View trace") : null;
  clear(view.panel,
    h("h3", {}, "Run"),
    h("p", { class: "mono small" }, run.run_id),
    h("p", {}, h("span", { class: `status ${run.status}`, id: "run-status" }, run.status), " ", trace),
    run.origin_run_id ? h("p", { class: "muted small" }, "re-run of ", h("a", { href: `#/workflows/${encodeURIComponent(view.wfId)}/${run.origin_run_id}` }, run.origin_run_id)) : null,
    h("h3", {}, "Input"), h("pre", { id: "run-input" }, json(run.input ?? null)),
    run.status === "failed" && run.error ? [h("h3", {}, "Error"), h("pre", { class: "error" }, run.error.message || json(run.error))] : null,
    ["completed", "bailed"].includes(run.status) ? [h("h3", {}, "Output"), h("pre", { id: "run-output" }, json(run.output))] : null,
    resumeForms.length ? [h("h3", {}, "Waiting for you"), ...resumeForms] : null,
    Object.keys(run.state || {}).length ? [h("h3", {}, "State"), h("pre", {}, json(run.state))] : null);
}

function resumeForm(view, run, suspended) {
  const node = view.wf.graph.nodes.find((n) => n.id === nodeOf(suspended.path)) || {};
  const status = h("p", { class: "muted small" });
  if (suspended.kind === "event") {
    return h("div", { class: "resume-form", dataset: { path: suspended.path } },
      h("p", {}, "Waiting for the event ", h("strong", {}, suspended.event || "")), status);
  }
  const schema = node.resume || { type: "object", properties: {} };
  const prefix = `resume-${suspended.path.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const form = inputForm(schema, prefix);
  return h("form", { class: "resume-form", dataset: { path: suspended.path }, onsubmit: async (e) => {
    e.preventDefault();
    let data;
    try { data = form.read(); } catch (err) { status.textContent = `invalid: ${err.message}`; return; }
    status.textContent = "resuming...";
    await follow(view, `/workflows/${encodeURIComponent(view.wfId)}/runs/${encodeURIComponent(run.run_id)}/resume`,
      { step: suspended.path, data, stream: true }, status);
    await showRun(view, run.run_id);
    loadRuns(view, run.run_id);
  } },
  h("p", {}, h("strong", { class: "mono" }, suspended.path), " asks:"),
  h("pre", { class: "small" }, json(suspended.payload)),
  form.el,
  h("button", { type: "submit", class: "primary resume-button" }, "Resume"), status);
}

async function timeTravel(view, runId, path) {
  try {
    const r = await post(`/workflows/${encodeURIComponent(view.wfId)}/runs/${encodeURIComponent(runId)}/time-travel`, { step: path });
    location.hash = `#/workflows/${encodeURIComponent(view.wfId)}/${r.run_id}`;
  } catch (e) {
    clear(view.steps, h("p", { class: "error" }, e.message));
  }
}
