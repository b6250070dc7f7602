// Mastra side of bench_workflows.py: the same workflows, timed the same way.
// Run by bench_workflows.py from a throwaway folder holding @mastra/core, @mastra/libsql, zod.
// Usage: node _workflows_mastra.mjs QUICK(0|1) DB_DIR  -> prints one JSON line (seconds per run).
import { createWorkflow, createStep } from "@mastra/core/workflows";
import { Mastra } from "@mastra/core/mastra";
import { LibSQLStore } from "@mastra/libsql";
import { z } from "zod";
import { readFileSync } from "node:fs";

const quick = process.argv[2] === "1";
const dbDir = process.argv[3];
const S = z.object({ n: z.number() });
const inc = (id) =>
  createStep({ id, inputSchema: S, outputSchema: S, execute: async ({ inputData }) => ({ n: inputData.n + 1 }) });

function seq(id, n) {
  let wf = createWorkflow({ id, inputSchema: S, outputSchema: S });
  for (let i = 0; i < n; i++) wf = wf.then(inc(`s${i}`));
  wf.commit();
  return wf;
}

function par(id) {
  const wf = createWorkflow({ id, inputSchema: S, outputSchema: z.any() }).parallel([inc("a"), inc("b"), inc("c"), inc("d")]);
  wf.commit();
  return wf;
}

function foreach(id) {
  const wf = createWorkflow({ id, inputSchema: z.array(S), outputSchema: z.array(S) }).foreach(inc("item"), { concurrency: 4 });
  wf.commit();
  return wf;
}

const ask = createStep({
  id: "ask",
  inputSchema: S,
  outputSchema: S,
  resumeSchema: z.object({ ok: z.boolean() }),
  suspendSchema: z.object({}),
  execute: async ({ inputData, resumeData, suspend }) => {
    if (!resumeData) return await suspend({});
    return { n: inputData.n + 1 };
  },
});

function suspender(id) {
  const wf = createWorkflow({ id, inputSchema: S, outputSchema: S }).then(ask);
  wf.commit();
  return wf;
}

function build(storage) {
  const workflows = {
    seq1: seq("seq1", 1), seq10: seq("seq10", 10), seq50: seq("seq50", 50),
    par4: par("par4"), foreach100: foreach("foreach100"), sr: suspender("sr"),
  };
  const opts = { workflows, logger: false };
  if (storage) opts.storage = storage;
  return new Mastra(opts);
}

async function timeit(fn, number, repeat) {
  for (let i = 0; i < Math.max(3, Math.floor(number / 5)); i++) await fn();
  const samples = [];
  for (let r = 0; r < repeat; r++) {
    const t0 = performance.now();
    for (let i = 0; i < number; i++) await fn();
    samples.push((performance.now() - t0) / 1000 / number);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

async function measure(mastra, persisted) {
  const n = quick ? 0.3 : 1;
  const k = (x) => Math.max(5, Math.floor(x * n));
  const start = (name, input) => async () => {
    const run = await mastra.getWorkflow(name).createRun();
    const r = await run.start({ inputData: input });
    if (r.status !== "success") throw new Error(`${name}: ${r.status}`);
  };
  const items = Array.from({ length: 100 }, (_, i) => ({ n: i }));
  const out = {};
  const tag = persisted ? "db" : "mem";
  out[`seq1_${tag}`] = await timeit(start("seq1", { n: 0 }), k(persisted ? 100 : 300), 5);
  out[`seq10_${tag}`] = await timeit(start("seq10", { n: 0 }), k(persisted ? 40 : 200), 5);
  out[`seq50_${tag}`] = await timeit(start("seq50", { n: 0 }), k(persisted ? 10 : 40), 5);
  out[`par4_${tag}`] = await timeit(start("par4", { n: 0 }), k(persisted ? 50 : 200), 5);
  out[`foreach100_${tag}`] = await timeit(start("foreach100", items), k(persisted ? 5 : 20), 5);
  if (persisted) {
    const wf = mastra.getWorkflow("sr");
    out.suspend_resume_db = await timeit(async () => {
      const run = await wf.createRun();
      const r = await run.start({ inputData: { n: 0 } });
      if (r.status !== "suspended") throw new Error(`sr: ${r.status}`);
      const again = await wf.createRun({ runId: run.runId }); // as another process would
      const r2 = await again.resume({ step: "ask", resumeData: { ok: true } });
      if (r2.status !== "success") throw new Error(`sr resume: ${r2.status}`);
    }, k(40), 5);
  }
  return out;
}

const mem = await measure(build(null), false);
const db = await measure(build(new LibSQLStore({ id: "bench", url: `file:${dbDir}/mastra.db` })), true);
const version = JSON.parse(readFileSync(new URL("./node_modules/@mastra/core/package.json", import.meta.url))).version;
console.log(JSON.stringify({ ...mem, ...db, version }));
