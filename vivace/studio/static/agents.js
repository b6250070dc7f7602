// Agents: pick an agent and a session, chat with streaming text, see tool calls and
// reasoning as they happen, approve or decline paused calls inline, inspect the session's
// state, working memory and the user's memories, and set the model and its settings for the
// next run.
import { get, put, stream, studio } from "./api.js";
import { clear, h, json, newId } from "./ui.js";

const state = {
  agents: [],
  agent: null,
  sessionId: null,
  userId: localStorage.getItem("vivace.studio.user") || "studio-user",
  settings: {},
  model: "",  // the next run's model ("" = the agent's), when the server allows choosing it
};

export async function agentsScreen(main, [agentId, sessionId]) {
  const data = await get("/agents");
  state.agents = data.agents || data;
  if (!state.agents.length) {
    clear(main, h("p", { class: "pad muted" }, "This server has no agents."));
    return;
  }
  state.agent = state.agents.find((a) => a.id === agentId) || state.agent || state.agents[0];
  if (sessionId) state.sessionId = sessionId;
  if (!state.sessionId) state.sessionId = newId("s-");

  const chat = h("div", { class: "chat", id: "chat" });
  const composer = h("textarea", { id: "composer", rows: 2, placeholder: `Message ${state.agent.name || state.agent.id}...` });
  const form = h("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); send(composer, chat); } },
    composer, h("button", { type: "submit", class: "primary", id: "send" }, "Send"));
  composer.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(composer, chat); }
  });
  const sessions = h("ul", { class: "list", id: "sessions" });
  const side = h("aside", { class: "side" },
    h("label", { for: "agent-select" }, "Agent"),
    h("select", { id: "agent-select", onchange: (e) => { state.sessionId = null; location.hash = `#/agents/${e.target.value}`; } },
      state.agents.map((a) => h("option", { value: a.id, selected: a.id === state.agent.id }, a.name || a.id))),
    h("p", { class: "muted small" }, describe(state.agent)),
    h("label", { for: "user-id" }, "User"),
    h("input", { id: "user-id", value: state.userId, onchange: (e) => { state.userId = e.target.value; localStorage.setItem("vivace.studio.user", state.userId); } }),
    h("div", { class: "row" }, h("h3", {}, "Sessions"),
      h("button", { id: "new-session", onclick: () => { location.hash = `#/agents/${state.agent.id}/${newId("s-")}`; } }, "New")),
    sessions);
  const panel = h("aside", { class: "panel", id: "panel" });
  clear(main, h("div", { class: "agents" }, side, h("section", { class: "center" }, chat, form), panel));
  loadSessions(sessions);
  loadHistory(chat);
  renderPanel(panel);
  composer.focus();
}

function describe(agent) {
  const model = Array.isArray(agent.model) ? agent.model.join(" -> ") : agent.model;
  const tools = (agent.tools || []).map((t) => t.name).join(", ") || "none";
  return `${agent.description ? agent.description + " - " : ""}model ${model}; tools: ${tools}`;
}

async function loadSessions(ul) {
  try {
    const data = await get(`/sessions?agent_id=${encodeURIComponent(state.agent.id)}&user_id=${encodeURIComponent(state.userId)}`);
    const items = data.sessions.map((s) => h("li", {},
      h("a", { href: `#/agents/${state.agent.id}/${encodeURIComponent(s.session_id)}`, class: s.session_id === state.sessionId ? "active" : "" },
        s.name || s.session_id)));
    if (!data.sessions.some((s) => s.session_id === state.sessionId)) {
      items.unshift(h("li", {}, h("a", { class: "active" }, `${state.sessionId} (new)`)));
    }
    clear(ul, items);
  } catch (e) {
    clear(ul, h("li", { class: "muted" }, e.status === 404 ? "no storage: sessions are not kept" : e.message));
  }
}

async function loadHistory(chat) {
  let session;
  try { session = await get(`/sessions/${encodeURIComponent(state.sessionId)}`); } catch { return; }
  const results = {};
  for (const m of session.messages) for (const p of m.parts) if (p.kind === "tool_result") results[p.call_id] = p;
  for (const m of session.messages) {
    if (m.role === "user") chat.append(userBubble(textOf(m)));
    else if (m.role === "assistant") {
      const turn = assistantTurn();
      for (const p of m.parts) {
        if (p.kind === "text") turn.text(p.text);
        else if (p.kind === "reasoning") turn.reasoning(p.text);
        else if (p.kind === "tool_call") {
          const r = results[p.id];
          turn.toolStarted(p.id, p.name, parseArgs(p.arguments));
          if (r) turn.toolCompleted(p.id, r.content, r.is_error);
        }
      }
      turn.done();
      chat.append(turn.el);
    }
  }
  const runs = session.runs || [];
  if (runs.length) chat.append(h("p", { class: "muted small center-text" }, `${runs.length} earlier run(s) in this session`));
  chat.scrollTop = chat.scrollHeight;
}

function parseArgs(a) { if (typeof a !== "string") return a; try { return JSON.parse(a); } catch { return a; } }
function textOf(m) { return m.parts.filter((p) => p.kind === "text").map((p) => p.text).join(""); }

function userBubble(text) { return h("div", { class: "msg user" }, h("div", { class: "bubble" }, text)); }

function assistantTurn() {
  const body = h("div", { class: "bubble" });
  const meta = h("div", { class: "meta" });
  const el = h("div", { class: "msg assistant" }, body, meta);
  const tools = {};
  let textEl = null;
  let reasoningEl = null;
  return {
    el, meta,
    text(t) {
      if (!textEl) { textEl = h("div", { class: "text" }); body.append(textEl); }
      textEl.textContent += t;
      reasoningEl = null;
    },
    reasoning(t) {
      if (!reasoningEl) {
        reasoningEl = h("pre", { class: "reasoning-text" });
        body.append(h("details", { class: "reasoning", open: true }, h("summary", {}, "Reasoning"), reasoningEl));
      }
      reasoningEl.textContent += t;
    },
    toolStarted(id, name, args) {
      textEl = null;
      if (tools[id]) return;  // a resumed stream repeats the paused call
      const status = h("span", { class: "status running" }, "running");
      const result = h("pre", { class: "result" });
      const actions = h("div", { class: "actions" });
      const card = h("div", { class: "tool", dataset: { callId: id } },
        h("div", { class: "tool-head" }, h("strong", {}, name), status),
        h("div", { class: "label" }, "arguments"), h("pre", { class: "args" }, json(args)),
        h("div", { class: "label" }, "result"), result, actions);
      tools[id] = { card, status, result, actions };
      body.append(card);
    },
    toolCompleted(id, content, isError) {
      const t = tools[id];
      if (!t) return;
      t.status.textContent = isError ? "error" : "done";
      t.status.className = `status ${isError ? "error" : "done"}`;
      t.result.textContent = json(content);
      if (t.actions.querySelector("button")) clear(t.actions);
      // a knowledge search: list the passages it retrieved (the run's citations)
      const passages = content && Array.isArray(content.passages) ? content.passages : null;
      if (passages && passages.length && !t.sources) {
        t.sources = h("ol", { class: "sources" }, passages.map((p) => h("li", {},
          h("span", { class: "source" }, `${p.source} #${p.position}`),
          h("span", { class: "muted small" }, ` score ${Number(p.score).toFixed(3)}`))));
        t.card.insertBefore(h("div", { class: "label" }, "sources"), t.result.previousSibling);
        t.card.insertBefore(t.sources, t.result.previousSibling);
      }
    },
    toolPending(id, onDecide) {
      const t = tools[id];
      if (!t) return;
      t.status.textContent = "waiting for approval";
      t.status.className = "status paused";
      t.result.textContent = "-";
      clear(t.actions,
        h("button", { class: "primary approve", onclick: () => onDecide(id, true) }, "Approve"),
        h("button", { class: "decline", onclick: () => onDecide(id, false) }, "Decline"));
    },
    decided(id, approved) {
      const t = tools[id];
      clear(t.actions, h("span", { class: "muted" }, approved ? "approved" : "declined"));
      t.status.textContent = approved ? "running" : "declined";
      t.status.className = `status ${approved ? "running" : "error"}`;
    },
    error(msg) { body.append(h("div", { class: "error-box" }, msg)); },
    done() {},
  };
}

function send(composer, chat) {
  const text = composer.value.trim();
  if (!text) return;
  composer.value = "";
  chat.append(userBubble(text));
  const turn = assistantTurn();
  chat.append(turn.el);
  chat.scrollTop = chat.scrollHeight;
  const body = { input: text, stream: true, session_id: state.sessionId, user_id: state.userId };
  const settings = Object.fromEntries(Object.entries(state.settings).filter(([, v]) => v !== "" && v !== undefined && !Number.isNaN(v)));
  if (Object.keys(settings).length) body.model_settings = settings;
  if (state.model) body.model = state.model;
  drive(`/agents/${encodeURIComponent(state.agent.id)}/runs`, body, turn, chat);
}

function drive(path, body, turn, chat) {
  const handle = (e) => {
    // a resumed run's stream starts with the events already shown: skip them by seq
    const seen = (turn.seen ||= {});
    if (e.seq <= (seen[e.run_id] ?? -1)) return;
    seen[e.run_id] = e.seq;
    switch (e.type) {
      case "run_started":
      case "run_resumed":
        turn.el.dataset.runId = e.run_id;
        if (e.trace_id && !turn.el.dataset.traceId) {
          turn.el.dataset.traceId = e.trace_id;
          turn.meta.append(h("a", { class: "trace-link", href: `#/traces/${e.trace_id}` }, "View trace"));
        }
        break;
      case "model_request_started":
        if (!turn.el.querySelector(".model-used")) turn.meta.append(h("span", { class: "muted small model-used" }, e.model));
        break;
      case "text_delta": turn.text(e.text); break;
      case "reasoning_delta": turn.reasoning(e.text); break;
      case "tool_call_started": turn.toolStarted(e.call_id, e.name, e.arguments); break;
      case "tool_call_completed": turn.toolCompleted(e.call_id, e.result, e.is_error); break;
      case "run_paused": {
        const decisions = {};
        const ids = e.pending.map((c) => c.id);
        for (const id of ids) {
          turn.toolPending(id, (callId, approved) => {
            decisions[callId] = approved;
            turn.decided(callId, approved);
            if (ids.every((i) => i in decisions)) {
              const resume = { approvals: decisions, stream: true };
              if (state.model) resume.model = state.model;  // the run goes on with its model
              drive(`/agents/${encodeURIComponent(state.agent.id)}/runs/${e.run_id}/resume`, resume, turn, chat);
            }
          });
        }
        break;
      }
      case "run_completed": {
        const u = e.usage || {};
        turn.meta.prepend(h("span", { class: "muted small usage" }, `${u.input_tokens || 0} in / ${u.output_tokens || 0} out tokens`));
        turn.el.classList.add("completed");
        loadSessions(document.getElementById("sessions"));
        renderPanel(document.getElementById("panel"));
        break;
      }
      case "run_failed": turn.error(`${e.status}: ${e.error && e.error.message}`); break;
      case "run_cancelled": turn.error(`cancelled: ${e.reason}`); break;
      default: break;
    }
    chat.scrollTop = chat.scrollHeight;
  };
  stream(path, body, handle).catch((err) => turn.error(err.message));
}

async function renderPanel(panel) {
  if (!panel) return;
  const temp = h("input", { id: "temperature", type: "number", step: "0.1", min: "0", max: "2", value: state.settings.temperature ?? "",
    onchange: (e) => { state.settings.temperature = e.target.value === "" ? undefined : Number(e.target.value); } });
  const maxTokens = h("input", { id: "max-tokens", type: "number", step: "1", min: "1", value: state.settings.max_tokens ?? "",
    onchange: (e) => { state.settings.max_tokens = e.target.value === "" ? undefined : Number(e.target.value); } });
  const info = studio.info || {};
  const agentModel = Array.isArray(state.agent.model) ? state.agent.model.join(" -> ") : state.agent.model;
  const model = info.model_override
    ? [h("input", { id: "model", list: "model-options", value: state.model, placeholder: agentModel || "provider/model",
        onchange: (e) => { state.model = e.target.value.trim(); } }),
      h("datalist", { id: "model-options" }, (info.models || []).map((m) => h("option", { value: m })))]
    : [h("input", { id: "model", value: agentModel || "", disabled: true, title: "this server does not let you choose the model" })];
  const sessionBox = h("pre", { id: "session-state" }, "-");
  const wm = h("textarea", { id: "working-memory", rows: 5, placeholder: "(empty)" });
  const memories = h("ul", { class: "list small", id: "user-memories" });
  clear(panel,
    h("h3", {}, "Model settings (next run)"),
    h("div", { class: "field" }, h("label", { for: "model" }, "model"), ...model),
    h("div", { class: "field" }, h("label", { for: "temperature" }, "temperature"), temp),
    h("div", { class: "field" }, h("label", { for: "max-tokens" }, "max tokens"), maxTokens),
    h("h3", {}, "Session"), h("p", { class: "muted small" }, state.sessionId), sessionBox,
    h("h3", {}, "Working memory"), wm,
    h("button", { onclick: async () => { await put(`/sessions/${encodeURIComponent(state.sessionId)}/working-memory`, { content: wm.value || null }); } }, "Save"),
    h("h3", {}, `Memories of ${state.userId}`), memories);
  try {
    const s = await get(`/sessions/${encodeURIComponent(state.sessionId)}`);
    sessionBox.textContent = json(s.state || {});
  } catch { sessionBox.textContent = "(new session)"; }
  try {
    const w = await get(`/sessions/${encodeURIComponent(state.sessionId)}/working-memory`);
    wm.value = w.content || "";
  } catch { /* no memory configured */ }
  try {
    const m = await get(`/users/${encodeURIComponent(state.userId)}/memories`);
    const list = m.memories || [];
    clear(memories, list.length ? list.map((x) => h("li", {}, x.content)) : h("li", { class: "muted" }, "none"));
  } catch { clear(memories, h("li", { class: "muted" }, "none")); }
}

