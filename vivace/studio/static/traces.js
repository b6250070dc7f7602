// Traces: a filtered list, and one trace as a waterfall with every span's attributes,
// tokens and cost. #/traces/<trace_id> opens one (the chat's "View trace" links here).
import { get } from "./api.js";
import { clear, h, json, ms, usd, when } from "./ui.js";

const RANGES = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, all: null };
const filters = { agent: "", model: "", status: "", range: "24h" };
const PAGE = 50;

export async function tracesScreen(main, [traceId]) {
  if (traceId) return showTrace(main, traceId);
  const agents = await get("/agents").then((d) => d.agents || d).catch(() => []);
  const table = h("tbody", { id: "trace-rows" });
  const more = h("button", { id: "more-traces", hidden: true }, "Older traces");
  const select = (id, key, options) => h("select", { id, onchange: (e) => { filters[key] = e.target.value; load(table, more); } },
    options.map(([v, label]) => h("option", { value: v, selected: filters[key] === v }, label)));
  clear(main, h("section", { class: "pad" },
    h("h1", {}, "Traces"),
    h("div", { class: "filters" },
      h("label", {}, "Agent ", select("filter-agent", "agent", [["", "all"], ...agents.map((a) => [a.id, a.name || a.id])])),
      h("label", {}, "Status ", select("filter-status", "status", [["", "all"], ["completed", "completed"], ["failed", "failed"], ["paused", "paused"], ["cancelled", "cancelled"]])),
      h("label", {}, "Model ", h("input", { id: "filter-model", size: 14, value: filters.model, placeholder: "any",
        onchange: (e) => { filters.model = e.target.value.trim(); load(table, more); } })),
      h("label", {}, "Time ", select("filter-range", "range", Object.keys(RANGES).map((k) => [k, k === "all" ? "all time" : `last ${k}`]))),
      h("button", { onclick: () => load(table, more) }, "Refresh")),
    h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["Started", "Trace", "Agent", "Status", "Duration", "Spans", "Tokens in/out", "Cost"].map((c) => h("th", {}, c)))),
      table),
    more));
  load(table, more);
}

// one page of the list (newest first); `cursor` continues after the rows shown
async function load(tbody, more, cursor) {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (filters.agent) q.set("agent", filters.agent);
  if (filters.model) q.set("model", filters.model);
  if (filters.status) q.set("status", filters.status);
  const range = RANGES[filters.range];
  if (range) q.set("since", String(Date.now() / 1000 - range));
  if (cursor) q.set("cursor", cursor);
  try {
    const { traces, next_cursor } = await get(`/studio/api/traces?${q}`);
    more.hidden = !next_cursor;
    more.onclick = () => load(tbody, more, next_cursor);
    const rows = traces.map((t) => h("tr", { class: `trace-row ${t.error ? "err" : ""}`, onclick: () => { location.hash = `#/traces/${t.trace_id}`; } },
      h("td", {}, when(t.start_time)),
      h("td", {}, h("a", { href: `#/traces/${t.trace_id}` }, t.name), h("div", { class: "muted small mono" }, t.trace_id)),
      h("td", {}, t.agent || t.workflow || "-"),
      h("td", {}, h("span", { class: `status ${t.status}` }, t.status)),
      h("td", {}, ms(t.duration_ms)),
      h("td", {}, t.spans),
      h("td", {}, `${t.input_tokens} / ${t.output_tokens}`),
      h("td", {}, usd(t.cost_usd))));
    if (cursor) { tbody.append(...rows); return; }
    clear(tbody, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No traces yet: run an agent from the Agents screen.")));
  } catch (e) {
    clear(tbody, h("tr", {}, h("td", { colspan: 8, class: "error" }, e.message)));
  }
}

async function showTrace(main, traceId) {
  clear(main, h("section", { class: "pad" }, h("p", { class: "muted" }, "Loading trace...")));
  let spans;
  for (let attempt = 0; attempt < 20; attempt++) {  // spans are written in batches: wait a little
    try { ({ spans } = await get(`/studio/api/traces/${traceId}`)); break; } catch (e) {
      if (e.status !== 404 || attempt === 19) {
        clear(main, h("section", { class: "pad" }, h("p", { class: "error" }, e.message), h("a", { href: "#/traces" }, "All traces")));
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const byId = Object.fromEntries(spans.map((s) => [s.span_id, s]));
  const children = {};
  const roots = [];
  for (const s of spans) {
    if (s.parent_id && byId[s.parent_id]) (children[s.parent_id] ||= []).push(s);
    else roots.push(s);
  }
  const ordered = [];
  const walk = (s, depth) => { ordered.push([s, depth]); for (const c of (children[s.span_id] || []).sort((a, b) => a.start_time - b.start_time)) walk(c, depth + 1); };
  roots.sort((a, b) => a.start_time - b.start_time).forEach((r) => walk(r, 0));
  const t0 = Math.min(...spans.map((s) => s.start_time));
  const t1 = Math.max(...spans.map((s) => s.end_time || s.start_time));
  const total = Math.max(t1 - t0, 1e-6);
  const detail = h("div", { class: "span-detail", id: "span-detail" }, h("p", { class: "muted" }, "Select a span."));
  const rows = ordered.map(([s, depth]) => {
    const a = s.attributes || {};
    const left = ((s.start_time - t0) / total) * 100;
    const width = Math.max((((s.end_time || s.start_time) - s.start_time) / total) * 100, 0.3);
    const tokens = a["gen_ai.usage.input_tokens"] !== undefined ? `${a["gen_ai.usage.input_tokens"]}/${a["gen_ai.usage.output_tokens"]} tok` : "";
    const row = h("div", { class: `span-row ${s.status === "error" ? "err" : ""}`, dataset: { spanId: s.span_id },
      onclick: () => { for (const r of document.querySelectorAll(".span-row.sel")) r.classList.remove("sel"); row.classList.add("sel"); showSpan(detail, s); } },
      h("div", { class: "span-name", style: { paddingLeft: `${depth * 16 + 4}px` } }, s.name),
      h("div", { class: "span-bar-wrap" }, h("div", { class: `span-bar ${a["vivace.span_type"] || ""}`, style: { left: `${left}%`, width: `${width}%` } })),
      h("div", { class: "span-dur" }, ms(s.duration_ms), tokens ? h("span", { class: "muted small" }, ` ${tokens}`) : null));
    return row;
  });
  const root = roots[0] || spans[0];
  const ra = root.attributes || {};
  clear(main, h("section", { class: "pad" },
    h("a", { href: "#/traces" }, "<- All traces"),
    h("h1", {}, root.name),
    h("p", { class: "muted mono small" }, `trace ${traceId} - ${spans.length} spans - ${ms(total * 1000)} - ${ra["gen_ai.usage.input_tokens"] ?? 0} in / ${ra["gen_ai.usage.output_tokens"] ?? 0} out tokens - ${usd(ra["vivace.cost_usd"])}`),
    h("div", { class: "trace-view" }, h("div", { class: "waterfall", id: "waterfall" }, rows), detail)));
  if (rows.length) rows[0].click();
}

function showSpan(el, s) {
  const a = s.attributes || {};
  const entries = Object.entries(a).filter(([k]) => k !== "vivace.events");
  clear(el,
    h("h2", {}, s.name),
    h("p", { class: "muted small mono" }, `span ${s.span_id}${s.parent_id ? ` - parent ${s.parent_id}` : ""}`),
    h("p", {}, h("span", { class: `status ${s.status === "error" ? "error" : "done"}` }, s.status), ` ${ms(s.duration_ms)} - ${s.kind}`),
    a["otel.status_description"] ? h("div", { class: "error-box" }, a["otel.status_description"]) : null,
    h("table", { class: "attrs" }, h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, h("pre", {}, typeof v === "string" ? (v.startsWith("[") || v.startsWith("{") ? json(v) : v) : json(v))))))));
}
