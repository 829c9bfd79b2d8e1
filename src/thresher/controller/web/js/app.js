// The monitor's shell: sign-in, the API, the live event stream and the page router.
// Pages are modules under ./pages/; each exports `render(main, params, query)` returning an
// object that may have `onEvent(kind, data)` and `close()`.
import { el, toast } from "./dom.js";

const TOKEN_KEY = "thresher.token";
let current = null; // the page shown: { onEvent, close }
let stream = null; // the EventSource
let streamJob = null; // the job whose tasks and log lines the stream carries
let held = []; // events that came while a page was being drawn

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  if (stream) stream.close();
  stream = null;
  askToken();
}

/** Call the API with the token; JSON in and out. Errors raise with the server's message. */
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401) {
    signOut();
    throw new Error("signed out: the token was refused");
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.message || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

/** Run an action, say how it went. */
export async function act(what, method, path, body) {
  try {
    const out = await api(method, path, body);
    toast(`${what}: done`);
    return out;
  } catch (e) {
    toast(`${what}: ${e.message}`, true);
    return null;
  }
}

// -- the event stream -------------------------------------------------------------------------

/** Open (or move) the stream; the ticket keeps the long-lived token out of the URL. */
export async function follow(job) {
  if (stream && streamJob === job && stream.readyState !== EventSource.CLOSED) return;
  if (stream) stream.close();
  streamJob = job;
  let ticket;
  try {
    ticket = (await api("POST", "/api/v1/events/ticket")).ticket;
  } catch {
    return;
  }
  const q = new URLSearchParams({ ticket });
  if (job !== null && job !== undefined) q.set("job", job);
  const source = new EventSource(`/api/v1/events/stream?${q}`);
  stream = source;
  const live = document.getElementById("live");
  for (const kind of ["hello", "job", "runs", "task", "worker", "log"]) {
    source.addEventListener(kind, (ev) => {
      if (kind === "hello") {
        live.classList.add("on");
        document.body.dataset.live = "1";
        // What changed between the page's first reads and the stream's start came as no
        // event: read once more, now that every later change will.
        if (current && current.reload) current.reload();
        return;
      }
      const data = JSON.parse(ev.data);
      if (!current) held.push([kind, data]); // a page is being drawn: it gets them after
      else if (current.onEvent) current.onEvent(kind, data);
    });
  }
  source.onerror = () => {
    // A ticket is good once: reconnect with a new one (the page reloads what it shows).
    live.classList.remove("on");
    document.body.dataset.live = "0";
    source.close();
    if (stream === source) {
      stream = null;
      setTimeout(() => { if (!stream && token()) follow(streamJob); }, 1000); // reloads at hello
    }
  };
}

// -- routing ----------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/farm$/, "farm"],
  [/^#\/jobs$/, "jobs"],
  [/^#\/job\/(\d+)$/, "job"],
  [/^#\/task\/(\d+)\/(\d+)\/(\d+)$/, "task"],
  [/^#\/worker\/([^/]+)$/, "worker"],
  [/^#\/stats$/, "stats"],
  [/^#\/stuck$/, "stuck"],
];

async function route() {
  if (!token()) return askToken();
  const [path, search] = (location.hash || "#/jobs").split("?");
  const query = new URLSearchParams(search || "");
  const found = ROUTES.map(([re, name]) => [path.match(re), name]).find(([m]) => m);
  const main = document.getElementById("main");
  if (current && current.close) current.close();
  current = null;
  held = [];
  main.replaceChildren();
  if (!found) {
    main.append(el("p", {}, "No such page."));
    return;
  }
  const [match, name] = found;
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === name || (name === "job" && a.dataset.nav === "jobs"));
  const page = await import(`./pages/${name}.js`);
  const params = match.slice(1).map(decodeURIComponent);
  const shown = (await page.render(main, params, query)) || {};
  current = shown;
  for (const [kind, data] of held.splice(0)) if (shown.onEvent) shown.onEvent(kind, data);
  follow(shown.job ?? null);
}

function askToken() {
  const dialog = document.getElementById("signin");
  document.getElementById("signout").hidden = true;
  if (!dialog.open) dialog.showModal();
}

function init() {
  const form = document.getElementById("signin-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const value = document.getElementById("token").value.trim();
    const store = document.getElementById("remember").checked ? localStorage : sessionStorage;
    store.setItem(TOKEN_KEY, value);
    try {
      await api("GET", "/api/v1/workers");
    } catch (e) {
      document.getElementById("signin-error").textContent = e.message;
      return;
    }
    document.getElementById("signin").close();
    document.getElementById("signout").hidden = false;
    route();
  });
  document.getElementById("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  if (token()) document.getElementById("signout").hidden = false;
  route();
}

init();
