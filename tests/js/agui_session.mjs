// Official AG-UI client (@ag-ui/client) holding a conversation with one agent, as an app
// would: runs until the agent needs nothing more from the client, executing frontend tools
// (the input's `tools`) and answering approval interrupts in between. Prints every run's
// events, the final messages and state as one JSON line.
// Usage: node agui_session.mjs <url> <config-json>
//   config: {headers, threadId, text, state, tools: [{name, description, parameters}],
//            answers: {toolName: result}, approve: true|false, maxRuns}
import { HttpAgent } from "@ag-ui/client";

const [url, raw] = process.argv.slice(2);
const config = JSON.parse(raw);
const agent = new HttpAgent({
  url,
  headers: config.headers ?? {},
  threadId: config.threadId,
  initialMessages: [{ id: "u1", role: "user", content: config.text }],
  initialState: config.state ?? {},
});
const runs = [];
let params = { tools: config.tools ?? [] };
try {
  for (let i = 0; i < (config.maxRuns ?? 4); i++) {
    const events = [];
    const { result } = await agent.runAgent(params, {
      onEvent: ({ event }) => events.push(event),
    });
    const finished = events.find((e) => e.type === "RUN_FINISHED");
    runs.push({ events, result });
    const outcome = finished?.outcome;
    if (outcome?.type === "interrupt") {
      // answer every open interrupt (the client refuses to run otherwise)
      params = {
        tools: config.tools ?? [],
        resume: agent.pendingInterrupts.map((it) => ({
          interruptId: it.id,
          status: "resolved",
          payload: { approve: config.approve ?? true },
        })),
      };
      continue;
    }
    const pending = outcome?.pendingToolCallIds ?? [];
    if (pending.length === 0) break;
    // run the frontend tools the agent called, as the app would, and send their results
    for (const id of pending) {
      const call = agent.messages
        .flatMap((m) => m.toolCalls ?? [])
        .find((c) => c.id === id);
      agent.addMessage({
        id: `tool-${id}`,
        role: "tool",
        toolCallId: id,
        content: String((config.answers ?? {})[call.function.name] ?? "no answer"),
      });
    }
    params = { tools: config.tools ?? [] };
  }
  console.log(JSON.stringify({ runs, messages: agent.messages, state: agent.state }));
} catch (err) {
  console.log(JSON.stringify({ runs, error: String(err) }));
  process.exit(1);
}
