// Official AG-UI client (@ag-ui/client): run an agent once and print every event and the
// result as JSON lines. Usage: node agui_client.mjs <url> <text> [<state-json>]
import { HttpAgent } from "@ag-ui/client";

const [url, text, state] = process.argv.slice(2);
const agent = new HttpAgent({
  url,
  initialMessages: [{ id: "u1", role: "user", content: text }],
  initialState: state ? JSON.parse(state) : {},
});
const events = [];
try {
  const { result, newMessages } = await agent.runAgent(
    {},
    { onEvent: ({ event }) => events.push(event) },
  );
  console.log(JSON.stringify({ events, result, newMessages, state: agent.state }));
} catch (err) {
  console.log(JSON.stringify({ events, error: String(err) }));
  process.exit(1);
}
