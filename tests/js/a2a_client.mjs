// Official A2A JS client (@a2a-js/sdk): stream one message to an agent and print every
// stream response as a JSON line, then get the task.
// Usage: node a2a_client.mjs <base-url> <text> [<headers-json>]
// With headers (e.g. {"Authorization": "Bearer ..."}), the SDK's authenticating fetch sends
// them with the card request and every JSON-RPC call.
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  createAuthenticatingFetchWithRetry,
} from "@a2a-js/sdk/client";
import { Role } from "@a2a-js/sdk";
import { randomUUID } from "node:crypto";

const [url, text, rawHeaders] = process.argv.slice(2);
let factory = new ClientFactory();
if (rawHeaders) {
  const headers = JSON.parse(rawHeaders);
  const fetchImpl = createAuthenticatingFetchWithRetry(fetch, {
    headers: async () => headers,
    shouldRetryWithHeaders: async () => undefined,
  });
  factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl })],
      cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
    }),
  );
}
const client = await factory.createFromUrl(url);
const message = { messageId: randomUUID(), role: Role.ROLE_USER, parts: [{ content: { $case: "text", value: text } }] };
let taskId;
for await (const event of client.sendMessageStream({ message })) {
  console.log(JSON.stringify({ stream: event }));
  taskId = taskId ?? event?.task?.id ?? event?.payload?.value?.id;
}
console.log(JSON.stringify({ card: await client.getAgentCard?.() ?? null }));
