// The farm: workers with their lanes, state, site, pools, live CPU and memory, and actions.
import { api, act } from "../app.js";
import { el, bytes, coalesce, colourOf, duration, throttle } from "../dom.js";

function state(w) {
  if (w.status !== "online") return w.status;
  if (w.sick_since) return "sick";
  if (w.nimby || w.local_nimby) return "nimby";
  if (!w.enabled) return "drained";
  return "online";
}

function meter(value, total, cls, text) {
  const pct = total ? Math.min(100, (100 * value) / total) : 0;
  return el("div", { class: `meter ${cls}`, title: text }, el("span", { style: `width:${pct}%` }), el("em", {}, text));
}

export async function render(main) {
  const body = el("tbody");
  main.append(
    el("h1", {}, "Farm"),
    el("table", { id: "workers" },
      el("thead", {}, el("tr", {}, ["worker", "state", "site", "pools", "lanes", "CPU", "memory", "actions"].map((h) => el("th", {}, h)))),
      body),
  );
  let workers = [], samples = {}, lanes = [], engines = {};

  async function load() {
    const [w, s, l] = await Promise.all([
      api("GET", "/api/v1/workers"),
      api("GET", "/api/v1/samples/latest"),
      api("GET", "/api/v1/lanes"),
    ]);
    workers = w.workers; samples = s.samples; lanes = l.lanes;
    draw();
  }
  async function loadWorkers() { workers = (await api("GET", "/api/v1/workers")).workers; draw(); }
  async function loadLanes() { lanes = (await api("GET", "/api/v1/lanes")).lanes; draw(); }

  function laneCells(w) {
    const running = lanes.filter((l) => l.worker === w.name);
    return (w.lanes_detail.length ? w.lanes_detail : [...Array(w.lanes).keys()].map((i) => ({ index: i, engines: null }))).map((lane) => {
      const run = running.find((r) => r.lane === lane.index);
      const what = run ? `${run.job_name} #${run.index} (${duration(Date.now() / 1000 - run.since)})` : "idle";
      return el("span", {
        class: "lane", style: run ? `border-left-color:${colourOf(run.engine, engines)}` : "",
        title: `lane ${lane.index}: runs ${lane.engines ? lane.engines.join(", ") : "anything"}`,
      }, run ? el("a", { href: `#/task/${run.job_id}/${run.block}/${run.index}` }, what) : what,
      el("button", { class: "link", title: "what this lane runs", "data-lane": lane.index, onclick: () => laneEngines(w, lane) }, "⚙"));
    });
  }

  async function laneEngines(w, lane) {
    const now = lane.engines ? lane.engines.join(", ") : "";
    const answer = prompt(`Engines lane ${lane.index} of ${w.name} runs (comma-separated; empty: anything; "reset": the worker's own)`, now);
    if (answer === null) return;
    const path = `/api/v1/workers/${encodeURIComponent(w.name)}/lanes/${lane.index}`;
    const names = answer.split(",").map((x) => x.trim()).filter(Boolean);
    if (answer.trim() === "reset") await act("lane engines", "DELETE", path);
    else await act("lane engines", "PUT", path, { engines: names.length ? names : null });
    load();
  }

  function actions(w) {
    const go = (what, method, path) => el("button", { onclick: async () => { await act(`${what} ${w.name}`, method, `/api/v1/workers/${encodeURIComponent(w.name)}${path}`); load(); } }, what);
    return [
      go("pause", "POST", "/pause"), go("resume", "POST", "/resume"),
      go("drain", "POST", "/disable"), go("enable", "POST", "/enable"),
      w.sick_since ? go("heal", "DELETE", "/sick") : null,
    ];
  }

  function draw() {
    body.replaceChildren(...workers.map((w) => {
      const s = samples[w.name] || {};
      const st = state(w);
      return el("tr", { dataset: { worker: w.name } },
        el("td", {}, el("a", { href: `#/worker/${encodeURIComponent(w.name)}` }, w.name), el("div", { class: "dim" }, `${w.cores} cores · ${bytes(w.ram_bytes)}`)),
        el("td", {}, el("span", { class: `state ${st}` }, st)),
        el("td", {}, w.site),
        el("td", {}, w.pools.join(", ") || "–"),
        el("td", {}, laneCells(w)),
        el("td", {}, meter(s.cpu ?? 0, 100, "cpu", s.cpu === undefined ? "–" : `${s.cpu.toFixed(0)}%`)),
        el("td", {}, meter(s.mem_used ?? 0, s.mem_total ?? 1, "mem", s.mem_used === undefined ? "–" : bytes(s.mem_used))),
        el("td", {}, actions(w)),
      );
    }));
  }

  engines = Object.fromEntries((await api("GET", "/api/v1/engines")).engines.map((x) => [x.name, x]));
  await load();
  const redraw = coalesce(draw);
  const reloadWorkers = throttle(loadWorkers, 500);
  const reloadLanes = throttle(loadLanes, 500);
  return {
    reload: load,
    onEvent(kind, data) {
      if (kind === "worker") {
        const w = workers.find((x) => x.id === data.worker_id);
        if (w && data.sample) { samples[w.name] = data.sample; redraw(); } // carried: no fetch
        if (!w || data.state_changed) reloadWorkers(); // its state changed, or a new worker
      } else if (kind === "job") reloadLanes(); // tasks started or ended somewhere
    },
  };
}
