// Metrics: tokens, cost and latency over time per agent and model (from stored traces).
import { get } from "./api.js";
import { clear, h, ms, usd, when } from "./ui.js";

const opts = { range: 7 * 86400, bucket: 3600 };

export async function metricsScreen(main) {
  const body = h("div", { id: "metrics-body" });
  const sel = (id, key, options) => h("select", { id, onchange: (e) => { opts[key] = Number(e.target.value); load(body); } },
    options.map(([v, l]) => h("option", { value: v, selected: opts[key] === v }, l)));
  clear(main, h("section", { class: "pad" }, h("h1", {}, "Metrics"),
    h("div", { class: "filters" },
      h("label", {}, "Range ", sel("metrics-range", "range", [[3600, "last hour"], [86400, "last 24h"], [7 * 86400, "last 7 days"], [30 * 86400, "last 30 days"]])),
      h("label", {}, "Bucket ", sel("metrics-bucket", "bucket", [[60, "minute"], [3600, "hour"], [86400, "day"]])),
      h("button", { onclick: () => load(body) }, "Refresh")),
    body));
  load(body);
}

async function load(body) {
  const since = Date.now() / 1000 - opts.range;
  const { rows } = await get(`/studio/api/metrics?since=${since}&bucket=${opts.bucket}`);
  if (!rows.length) { clear(body, h("p", { class: "muted" }, "No runs in this range yet.")); return; }
  const totals = rows.reduce((t, r) => ({ runs: t.runs + r.runs, errors: t.errors + r.errors, inp: t.inp + r.input_tokens, out: t.out + r.output_tokens, cost: t.cost + r.cost_usd }), { runs: 0, errors: 0, inp: 0, out: 0, cost: 0 });
  const series = (key) => {
    const m = new Map();
    for (const r of rows) m.set(r.time, (m.get(r.time) || 0) + (r[key] || 0));
    return [...m.entries()].sort((a, b) => a[0] - b[0]);
  };
  clear(body,
    h("div", { class: "cards" },
      card("Runs", totals.runs), card("Errors", totals.errors),
      card("Tokens in / out", `${totals.inp} / ${totals.out}`), card("Cost", usd(totals.cost))),
    h("div", { class: "charts" },
      chart("Tokens (input + output)", series("input_tokens").map(([t, v], i) => [t, v + series("output_tokens")[i][1]])),
      chart("Cost (USD)", series("cost_usd"), usd),
      chart("Runs", series("runs"))),
    h("table", { class: "grid", id: "metrics-table" },
      h("thead", {}, h("tr", {}, ["Time", "Agent", "Model", "Runs", "Errors", "Tokens in", "out", "cached", "reasoning", "Cost", "Run p50/p95/p99", "Model p95", "Tool p95"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("td", {}, when(r.time)), h("td", {}, r.agent || r.workflow || "-"), h("td", {}, r.model || "-"),
        h("td", {}, r.runs), h("td", {}, r.errors), h("td", {}, r.input_tokens), h("td", {}, r.output_tokens),
        h("td", {}, r.cached_tokens), h("td", {}, r.reasoning_tokens), h("td", {}, usd(r.cost_usd)),
        h("td", {}, `${ms(r.run_p50_ms)} / ${ms(r.run_p95_ms)} / ${ms(r.run_p99_ms)}`),
        h("td", {}, ms(r.model_p95_ms)), h("td", {}, ms(r.tool_p95_ms)))))));
}

function card(label, value) { return h("div", { class: "card" }, h("div", { class: "muted small" }, label), h("div", { class: "big" }, String(value))); }

function chart(title, points, fmt = String) {
  const W = 320, H = 120;
  const max = Math.max(...points.map((p) => p[1]), 1e-12);
  const bw = W / Math.max(points.length, 1);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  points.forEach(([t, v], i) => {
    const r = document.createElementNS(NS, "rect");
    const hgt = (v / max) * (H - 10);
    r.setAttribute("x", String(i * bw + 1)); r.setAttribute("y", String(H - hgt));
    r.setAttribute("width", String(Math.max(bw - 2, 1))); r.setAttribute("height", String(hgt));
    const tip = document.createElementNS(NS, "title"); tip.textContent = `${when(t)}: ${fmt(v)}`;
    r.append(tip); svg.append(r);
  });
  return h("figure", { class: "chart-box" }, h("figcaption", {}, title, h("span", { class: "muted small" }, ` max ${fmt(max)}`)), svg);
}
