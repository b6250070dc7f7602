// The Studio's shell: hash routes -> screens, and the sign-in dialog when auth is on.
import { get, setToken, setUnauthorizedHandler, studio } from "./api.js";
import { clear, h } from "./ui.js";
import { agentsScreen } from "./agents.js";
import { tracesScreen } from "./traces.js";
import { metricsScreen } from "./metrics.js";
import { toolsScreen } from "./tools.js";
import { workflowsScreen } from "./workflows.js";

const screens = {
  agents: agentsScreen,
  traces: tracesScreen,
  metrics: metricsScreen,
  tools: toolsScreen,
  workflows: workflowsScreen,
};

let signingIn = null;
function signIn() {
  if (signingIn) return signingIn;
  const dialog = document.getElementById("login");
  const form = document.getElementById("login-form");
  const input = document.getElementById("login-token");
  signingIn = new Promise((resolve) => {
    form.onsubmit = async (e) => {
      e.preventDefault();
      setToken(input.value.trim());
      const r = await fetch("/studio/api/info", { headers: { authorization: `Bearer ${input.value.trim()}` } });
      if (r.status === 401) {
        document.getElementById("login-error").textContent = "That key or token was not accepted.";
        return;
      }
      dialog.close();
      signingIn = null;
      resolve();
    };
  });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return signingIn;
}
setUnauthorizedHandler(signIn);

function route() {
  const [, name, ...rest] = (location.hash || "#/agents").split("/");
  const screen = screens[name] ? name : "agents";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.screen === screen);
  const main = document.getElementById("main");
  main.dataset.screen = screen;
  screens[screen](main, rest.map(decodeURIComponent));
}

async function start() {
  const info = studio.info = await get("/studio/api/info");
  document.getElementById("whoami").textContent = info.user_id ? `signed in as ${info.user_id}` : "";
  window.addEventListener("hashchange", route);
  route();
}

start().catch((e) => {
  clear(document.getElementById("main"), h("p", { class: "error pad" }, `Could not reach the server: ${e.message}`));
});
