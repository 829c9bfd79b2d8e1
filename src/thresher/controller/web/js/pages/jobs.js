// Jobs: filter and sort (owner, state, name, priority, site), a per-state progress bar,
// submit time, elapsed, ETA; the view lives in the URL (#/jobs?owner=ana&status=running&sort=-priority).
import { api, act } from "../app.js";
import { el, coalesce, duration, progress, throttle, when } from "../dom.js";

const COLUMNS = [
  ["id", "id", (j) => j.id], ["name", "name", (j) => j.name], ["owner", "owner", (j) => j.owner],
  ["status", "state", (j) => j.status], ["priority", "priority", (j) => j.priority],
  ["progress", "progress", (j) => (j.counts.succeeded + j.counts.skipped) / Math.max(j.counts.total, 1)],
  ["created_at", "submitted", (j) => j.created_at], ["elapsed", "elapsed", (j) => elapsed(j)],
  ["eta", "ETA", (j) => j.eta_s ?? Infinity],
];
const STATUSES = ["", "waiting", "queued", "running", "paused", "succeeded", "failed", "canceled"];

function elapsed(j) {
  return (j.finished_at ?? Date.now() / 1000) - j.created_at;
}

function siteOf(j) {
  const m = /site:([^,]+)/.exec(j.filters || "");
  return m ? m[1] : "";
}

export async function render(main, _params, query) {
  const view = Object.fromEntries(query.entries());
  const setView = (k, v) => {
    if (v) view[k] = v; else delete view[k];
    history.replaceState(null, "", `#/jobs?${new URLSearchParams(view)}`);
    draw();
  };
  const input = (key, placeholder) => el("input", { placeholder, value: view[key] || "", "data-filter": key, oninput: (e) => setView(key, e.target.value) });
  const status = el("select", { "data-filter": "status", onchange: (e) => { setView("status", e.target.value); load(); } },
    STATUSES.map((s) => el("option", { value: s, selected: (view.status || "") === s }, s || "any state")));
  const saved = el("select", { onchange: (e) => { if (e.target.value) location.hash = e.target.value; } });
  const drawSaved = () => {
    const views = JSON.parse(localStorage.getItem("thresher.views") || "{}");
    saved.replaceChildren(el("option", { value: "" }, "saved views…"), ...Object.entries(views).map(([n, h]) => el("option", { value: h }, n)));
  };
  drawSaved();
  const body = el("tbody");
  const head = el("tr");
  main.append(
    el("h1", {}, "Jobs"),
    el("div", { class: "toolbar" }, input("owner", "owner"), status, input("q", "name contains"),
      input("priority", "priority ≥"), input("site", "site"), saved,
      el("button", { onclick: () => { const n = prompt("Name this view"); if (!n) return; const v = JSON.parse(localStorage.getItem("thresher.views") || "{}"); v[n] = location.hash; localStorage.setItem("thresher.views", JSON.stringify(v)); drawSaved(); } }, "save view")),
    el("table", { id: "jobs" }, el("thead", {}, head), body),
  );
  let jobs = [];

  function header() {
    const sort = view.sort || "-id";
    head.replaceChildren(...COLUMNS.map(([key, label]) => el("th", {
      class: "sortable" + (["priority", "eta", "elapsed", "id"].includes(key) ? " num" : ""),
      onclick: () => setView("sort", sort === key ? `-${key}` : key),
    }, label + (sort === key ? " ▲" : sort === `-${key}` ? " ▼" : ""))), el("th", {}, "actions"));
  }

  async function load() {
    const q = new URLSearchParams({ limit: "1000" });
    if (view.status && view.status !== "paused") q.set("status", view.status);
    if (view.owner) q.set("owner", view.owner);
    const found = [];
    for (let offset = 0; found.length < 5000;) { // pages bounded in bytes; the newest 5,000 jobs
      q.set("offset", offset);
      const page = await api("GET", `/api/v1/jobs?${q}`);
      found.push(...page.jobs);
      if (!page.more) break;
      offset = page.next_offset;
    }
    jobs = found;
    draw();
  }

  function shown() {
    const sort = view.sort || "-id";
    const [, , key] = COLUMNS.find(([k]) => k === sort.replace("-", "")) || COLUMNS[0];
    const dir = sort.startsWith("-") ? -1 : 1;
    return jobs
      .filter((j) => !view.q || j.name.toLowerCase().includes(view.q.toLowerCase()))
      .filter((j) => !view.priority || j.priority >= Number(view.priority))
      .filter((j) => !view.site || siteOf(j).includes(view.site))
      .filter((j) => view.status !== "paused" || j.paused)
      .sort((a, b) => (key(a) > key(b) ? dir : key(a) < key(b) ? -dir : 0));
  }

  function actions(j) {
    const go = (what, method, path, body, cls) => el("button", { class: cls, "data-action": what, onclick: async () => { await act(`${what} job ${j.id}`, method, `/api/v1/jobs/${j.id}${path}`, body); load(); } }, what);
    return [
      j.paused ? go("resume", "POST", "/resume") : go("pause", "POST", "/pause"),
      go("cancel", "POST", "/cancel", undefined, "danger"), go("retry", "POST", "/retry"),
      el("button", { onclick: async () => { const p = prompt("Priority (0-100)", j.priority); if (p !== null) { await act("priority", "PUT", `/api/v1/jobs/${j.id}/priority`, { priority: Number(p) }); load(); } } }, "priority"),
      el("button", { class: "danger", onclick: async () => { if (confirm(`Delete job ${j.id} (${j.name})?`)) { await act("delete", "DELETE", `/api/v1/jobs/${j.id}`); load(); } } }, "delete"),
    ];
  }

  function draw() {
    header();
    body.replaceChildren(...shown().map((j) => el("tr", { dataset: { job: j.id } },
      el("td", { class: "num" }, j.id),
      el("td", {}, el("a", { href: `#/job/${j.id}` }, j.name)),
      el("td", {}, j.owner),
      el("td", {}, el("span", { class: `state ${j.status}` }, j.paused ? "paused" : j.status)),
      el("td", { class: "num" }, j.priority),
      el("td", {}, progress(j.counts), el("span", { class: "dim" }, ` ${j.counts.succeeded + j.counts.skipped}/${j.counts.total}`)),
      el("td", {}, when(j.created_at)),
      el("td", { class: "num" }, duration(elapsed(j))),
      el("td", { class: "num", "data-eta": j.eta_s ?? "" }, j.finished_at ? "done" : duration(j.eta_s)),
      el("td", {}, actions(j)),
    )));
  }

  // A busy farm changes a few jobs at a time: fetch those, not the whole list again.
  const changed = new Set();
  const refresh = throttle(async () => {
    const ids = [...changed];
    changed.clear();
    if (ids.some((id) => !jobs.some((j) => j.id === id)) || ids.length > 20) return load();
    const fresh = await Promise.all(ids.map((id) => api("GET", `/api/v1/jobs/${id}`).catch(() => null)));
    jobs = jobs.map((j) => fresh.find((f) => f && f.id === j.id) || j).filter((j) => !ids.includes(j.id) || fresh.some((f) => f && f.id === j.id));
    draw();
  }, 250);
  await load();
  const redraw = coalesce(draw);
  const LIVE = ["status", "status_reason", "paused", "priority", "finished_at", "counts", "eta_s"];
  return {
    reload: load,
    onEvent(kind, data) {
      if (kind !== "job" || data.job === undefined) return; // undefined: it left the live set
      const shown = jobs.find((j) => j.id === data.job_id);
      if (shown && data.job) { // the event carries the job's state: nothing to fetch
        for (const k of LIVE) shown[k] = data.job[k];
        redraw();
      } else {
        changed.add(data.job_id); // a new job, or one deleted
        refresh();
      }
    },
  };
}
