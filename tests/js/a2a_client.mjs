// Official A2A JS client (@a2a-js/sdk): stream one message to an agent and print every
// stream response as a JSON line, then get the task. Usage: node a2a_client.mjs <base-url> <text>
import { ClientFactory } from "@a2a-js/sdk/client";
import { Role } from "@a2a-js/sdk";
import { randomUUID } from "node:crypto";

const [url, text] = process.argv.slice(2);
const client = await new ClientFactory().createFromUrl(url);
const message = { messageId: randomUUID(), role: Role.ROLE_USER, parts: [{ content: { $case: "text", value: text } }] };
let taskId;
for await (const event of client.sendMessageStream({ message })) {
  console.log(JSON.stringify({ stream: event }));
  taskId = taskId ?? event?.task?.id ?? event?.payload?.value?.id;
}
console.log(JSON.stringify({ card: await client.getAgentCard?.() ?? null }));
