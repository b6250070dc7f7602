// The HTTP API, with the key/token the user signed in with (sessionStorage).
const KEY = "vivace.studio.token";

// What /studio/api/info said (who is signed in, what the server allows), set at start.
export const studio = { info: null };

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(t) { t ? sessionStorage.setItem(KEY, t) : sessionStorage.removeItem(KEY); }

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

let onUnauthorized = null;
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

function headers(extra) {
  const out = { ...(extra || {}) };
  const t = token();
  if (t) out.authorization = `Bearer ${t}`;
  return out;
}

export async function request(method, path, body) {
  const init = { method, headers: headers(body !== undefined ? { "content-type": "application/json" } : {}) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  if (r.status === 401 && onUnauthorized) {
    await onUnauthorized();
    return request(method, path, body);
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const get = (p) => request("GET", p);
export const post = (p, b) => request("POST", p, b);
export const put = (p, b) => request("PUT", p, b);

// POST that answers with SSE: calls onEvent(event) for each `data:` record, in order.
export async function stream(path, body, onEvent, signal) {
  const r = await fetch(path, {
    method: "POST",
    headers: headers({ "content-type": "application/json", accept: "text/event-stream" }),
    body: JSON.stringify(body),
    signal,
  });
  if (r.status === 401 && onUnauthorized) {
    await onUnauthorized();
    return stream(path, body, onEvent, signal);
  }
  if (!r.ok) {
    let data = null;
    try { data = await r.json(); } catch { /* not JSON */ }
    throw new ApiError(r.status, data);
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}
