// Tools: run any registered tool alone, with a form generated from its JSON Schema.
import { get, post } from "./api.js";
import { clear, h, json, ms } from "./ui.js";
import { schemaForm } from "./form.js";

export async function toolsScreen(main, [agentId, toolName]) {
  const agents = await get("/agents").then((d) => d.agents || d);
  const agent = agents.find((a) => a.id === agentId) || agents[0];
  if (!agent) { clear(main, h("p", { class: "pad muted" }, "No agents.")); return; }
  const tools = agent.tools || [];
  const tool = tools.find((t) => t.name === toolName) || tools[0];
  const list = h("ul", { class: "list" }, tools.map((t) => h("li", {},
    h("a", { href: `#/tools/${agent.id}/${t.name}`, class: t === tool ? "active" : "" }, t.name))));
  const side = h("aside", { class: "side" },
    h("label", { for: "tool-agent" }, "Agent"),
    h("select", { id: "tool-agent", onchange: (e) => { location.hash = `#/tools/${e.target.value}`; } },
      agents.map((a) => h("option", { value: a.id, selected: a === agent }, a.name || a.id))),
    h("h3", {}, "Tools"), tools.length ? list : h("p", { class: "muted" }, "This agent has no tools."));
  if (!tool) { clear(main, h("div", { class: "agents two" }, side, h("section", { class: "pad" }))); return; }
  const form = schemaForm(tool.parameters, { prefix: "arg" });
  const out = h("pre", { id: "tool-result", class: "result" }, "-");
  const status = h("span", { id: "tool-status", class: "muted" });
  const run = async () => {
    let args;
    try { args = form.read(); } catch (e) { status.textContent = `invalid input: ${e.message}`; return; }
    status.textContent = "running...";
    try {
      const r = await post(`/studio/api/agents/${encodeURIComponent(agent.id)}/tools/${encodeURIComponent(tool.name)}`, { arguments: args });
      if (r.ok) {
        status.textContent = `ok in ${ms(r.duration_ms)}`;
        status.className = "status done";
        out.textContent = json(r.result);
      } else {  // the tool (or its arguments) failed: the answer says why
        status.textContent = "error";
        status.className = "status error";
        out.textContent = `${r.error} (${r.code})`;
      }
    } catch (e) {
      status.textContent = "error";
      status.className = "status error";
      out.textContent = e.message;
    }
  };
  clear(main, h("div", { class: "agents two" }, side, h("section", { class: "pad tool-play" },
    h("h1", {}, tool.name, tool.requires_approval ? h("span", { class: "status paused small" }, " needs approval in runs") : null),
    h("p", { class: "muted" }, tool.description || ""),
    h("form", { id: "tool-form", onsubmit: (e) => { e.preventDefault(); run(); } }, form.el,
      h("button", { type: "submit", class: "primary", id: "run-tool" }, "Run tool"), " ", status),
    h("h3", {}, "Result"), out,
    h("details", {}, h("summary", {}, "JSON Schema"), h("pre", {}, json(tool.parameters))))));
}
