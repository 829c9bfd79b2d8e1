// One job: blocks, a task grid and frame strip per block (from runs), range actions,
// dependencies, why it waits, errors and error hosts. Live: task and job events redraw it.
import { api, act } from "../app.js";
import { el, coalesce, colourOf, duration, progress, STATES, throttle, when } from "../dom.js";
import { frameStrip, taskGrid } from "./grid.js";

export async function render(main, [jobId]) {
  const id = Number(jobId);
  const head = el("div");
  const blocksBox = el("div");
  const why = el("div", { class: "panel", id: "why" });
  const errors = el("div", { class: "panel", id: "errors" });
  main.append(head, blocksBox, el("div", { class: "cols" }, why, errors));
  let job = null, engines = {};
  const views = new Map(); // block index -> { grid, strip, data }

  async function loadJob() {
    const [j, eta] = await Promise.all([api("GET", `/api/v1/jobs/${id}`), api("GET", `/api/v1/jobs/${id}/eta`)]);
    job = j;
    job.eta_s = eta.eta_s;
    job.blocks.forEach((b, i) => (b.eta_s = eta.blocks[i]));
    drawHead();
    drawBlocks();
  }

  function drawHead() {
    const go = (what, method, path, body) => el("button", { "data-action": what, onclick: async () => { await act(`${what} job ${id}`, method, `/api/v1/jobs/${id}${path}`, body); loadJob(); } }, what);
    head.replaceChildren(...[
      el("h1", {}, `${job.name} `, el("span", { class: `state ${job.status}`, id: "job-state" }, job.paused ? "paused" : job.status)),
      el("div", { class: "toolbar" },
        progress(job.counts),
        el("span", { class: "dim" }, `${job.counts.succeeded + job.counts.skipped}/${job.counts.total} done · owner ${job.owner} · priority ${job.priority} · submitted ${when(job.created_at)} · ETA `),
        el("b", { id: "job-eta" }, job.finished_at ? "done" : duration(job.eta_s)),
        job.paused ? go("resume", "POST", "/resume") : go("pause", "POST", "/pause"),
        go("cancel", "POST", "/cancel"), go("retry", "POST", "/retry"),
      ),
      job.after.length ? el("p", {}, "Waits on jobs: ", job.after.map((a) => el("a", { href: `#/job/${a}`, style: "margin-right:.5rem" }, `#${a}`))) : null,
      job.status_reason ? el("p", { class: "dim" }, job.status_reason) : null,
    ].filter(Boolean));
  }

  function drawBlocks() {
    for (const b of job.blocks) {
      let v = views.get(b.index);
      if (!v) {
        v = makeBlockView(b.index);
        views.set(b.index, v);
        blocksBox.append(v.box);
        loadRuns(b.index);
      }
      v.info.replaceChildren(
        el("h2", {}, `Block ${b.index}: ${b.name} `, el("span", { class: "lane", style: `border-left-color:${colourOf(b.engine || job.kind, engines)}` }, b.engine || job.kind)),
        el("div", { class: "toolbar" }, progress(b.counts),
          el("span", { class: "dim" }, `frames ${b.frames} · ${b.counts.total} tasks of ${b.chunk} · mean ${b.mean_runtime_s === null ? "–" : duration(b.mean_runtime_s)} · ETA ${duration(b.eta_s)}`),
          b.after.length ? el("span", { class: "dim" }, `· after blocks ${b.after.join(", ")}`) : null,
          b.after_frames.length ? el("span", { class: "dim" }, `· frame by frame after ${b.after_frames.join(", ")}`) : null),
      );
    }
  }

  function makeBlockView(index) {
    const info = el("div");
    const selection = el("div", { class: "selection", id: `selection-${index}` });
    const strip = frameStrip({ onSelect: (sel) => showSelection(index, sel) });
    strip.node.dataset.block = index;
    const grid = taskGrid({ width: Math.min(main.clientWidth - 40, 1400), onPick: (i) => (location.hash = `#/task/${id}/${index}/${i}`) });
    grid.node.dataset.block = index;
    const legend = el("div", { class: "legend dim" }, STATES.map((s) => [el("span", { class: `s-${s}` }), s]));
    const box = el("div", { class: "panel" }, info, strip.node, selection, legend, el("div", { class: "grid-wrap" }, grid.node));
    return { box, info, strip, grid, selection, data: null };
  }

  async function showSelection(index, sel) {
    const v = views.get(index);
    if (!sel) { v.selection.replaceChildren(); return; }
    const [a, b] = sel;
    const page = async (i) => (await api("GET", `/api/v1/jobs/${id}/tasks?block=${index}&offset=${i}&limit=1`)).tasks[0];
    const [first, last] = await Promise.all([page(a), page(b)]);
    const frames = `${first.frames[0]}–${last.frames[last.frames.length - 1]}`;
    const go = (action) => el("button", { "data-range": action, onclick: async () => {
      const out = await act(`${action} tasks ${a}–${b}`, "POST", `/api/v1/jobs/${id}/blocks/${index}/range`, { first: a, last: b, action });
      if (out) v.selection.append(el("span", { class: "dim" }, ` ${out.affected} affected, ${out.unchanged} unchanged`));
      v.strip.clear();
    } }, action);
    v.selection.replaceChildren(`tasks ${a}–${b} (frames ${frames}) `, go("retry"), " ", go("skip"), " ", go("cancel"));
  }

  async function loadRuns(index) {
    const data = await api("GET", `/api/v1/jobs/${id}/blocks/${index}/runs`);
    const v = views.get(index);
    v.data = data;
    v.grid.draw(data);
    v.strip.draw(data);
  }

  async function loadWhy() {
    const w = await api("GET", `/api/v1/jobs/${id}/why`);
    const lines = w.reason ? [el("p", {}, w.reason)] : w.blocks.map((b) => el("div", {},
      el("b", {}, `${b.name}: ${b.waiting_tasks} tasks may run`),
      el("ul", {}, b.reasons.map((r) => el("li", {}, r.text, r.workers ? el("span", { class: "dim" }, ` (${r.workers} workers)`) : null)))));
    why.replaceChildren(el("h2", {}, "Why it waits"), ...(lines.length ? lines : [el("p", { class: "dim" }, "Nothing holds it.")]));
  }

  async function loadErrors() {
    const [hosts, attempts] = await Promise.all([
      api("GET", `/api/v1/jobs/${id}/error-hosts`),
      job.counts.total <= 20000 ? api("GET", `/api/v1/jobs/${id}/attempts`) : Promise.resolve({ attempts: [] }),
    ]);
    const failed = attempts.attempts.filter((a) => ["failed", "timed_out"].includes(a.status)).slice(-50).reverse();
    errors.replaceChildren(
      el("h2", {}, "Errors"),
      failed.length ? el("table", {}, el("tbody", {}, failed.map((a) => el("tr", {},
        el("td", {}, el("a", { href: `#/task/${id}/${a.block}/${a.index}` }, `${a.block}/${a.index}`)),
        el("td", {}, a.worker), el("td", {}, `exit ${a.exit_code ?? "–"}`), el("td", { class: "dim" }, a.message || ""))))) : el("p", { class: "dim" }, "No failed attempts."),
      el("h2", {}, "Error hosts"),
      hosts.hosts.length ? el("table", {}, el("tbody", {}, hosts.hosts.map((h) => el("tr", {},
        el("td", {}, h.worker), el("td", {}, `block ${h.block}`), el("td", {}, `${h.errors} errors`), el("td", {}, h.avoided ? "avoided" : ""))))) : el("p", { class: "dim" }, "None."),
    );
  }

  engines = Object.fromEntries((await api("GET", "/api/v1/engines")).engines.map((e) => [e.name, e]));
  await loadJob();
  loadWhy();
  loadErrors();
  // Events carry the job's state and its blocks' task runs: the page draws them as they come
  // and asks only for what they do not carry (the finer estimate, why it waits, errors).
  const redraw = coalesce(() => { drawHead(); drawBlocks(); });
  const reloadEta = throttle(loadJob, 15000); // the finer estimate (elapsed, farm history)
  const reloadWhy = throttle(loadWhy, 2000);
  const reloadErrors = throttle(loadErrors, 2000);
  const fetchRuns = throttle(() => { for (const b of views.keys()) loadRuns(b); }, 500);
  function merge(summary) {
    const was = job.status;
    if (summary.status !== was || !["running", "succeeded"].includes(summary.status)) reloadWhy();
    for (const k of ["status", "status_reason", "paused", "priority", "finished_at", "counts", "eta_s"]) job[k] = summary[k];
    for (const b of summary.blocks) Object.assign(job.blocks[b.index], b);
    redraw();
  }
  return {
    job: id,
    reload() { loadJob(); for (const b of views.keys()) loadRuns(b); },
    onEvent(kind, data) {
      if (data.job_id !== id) return;
      if (kind === "runs") {
        const v = views.get(data.block);
        if (v && data.runs) { v.data = data; v.grid.draw(data); v.strip.draw(data); } else fetchRuns();
      } else if (kind === "task") {
        if (data.status === "failed" || data.status === "queued") reloadErrors();
      } else if (kind === "job" && data.job) {
        merge(data.job);
        reloadEta();
      }
    },
  };
}
