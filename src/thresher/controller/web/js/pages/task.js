// One task: its attempts (worker, times, exit, peak memory) and the live log: the tail, then
// new lines as they arrive (log events), searchable, by attempt, downloadable.
import { api, act } from "../app.js";
import { el, bytes, duration, throttle, when } from "../dom.js";

export async function render(main, [jobId, block, index]) {
  const id = Number(jobId), b = Number(block), i = Number(index);
  const base = `/api/v1/jobs/${id}/blocks/${b}/tasks/${i}`;
  const head = el("div");
  const attemptsBox = el("div", { class: "panel" });
  const search = el("input", { placeholder: "search the log", id: "log-search", oninput: () => drawLog() });
  const which = el("select", { id: "log-attempt", onchange: () => drawLog() });
  const follow = el("input", { type: "checkbox", checked: true, id: "log-follow" });
  const download = el("a", { href: "#", id: "log-download", onclick: (e) => { e.preventDefault(); save(); } }, "download");
  const log = el("pre", { class: "log", id: "log" });
  main.append(head, attemptsBox, el("div", { class: "panel" },
    el("div", { class: "toolbar" }, el("b", {}, "Log"), which, search, el("label", {}, follow, " follow"), download), log));
  let task = null, lines = [], lastId = 0;

  async function loadTask() {
    task = await api("GET", base);
    const go = (what) => el("button", { onclick: async () => { await act(`${what} task ${i}`, "POST", `${base}/${what}`); loadTask(); } }, what);
    head.replaceChildren(
      el("h1", {}, el("a", { href: `#/job/${id}` }, `job ${id}`), ` › block ${b} › task ${i} `, el("span", { class: `state ${task.status}`, id: "task-state" }, task.status)),
      el("div", { class: "toolbar" }, el("span", { class: "dim" }, `frames ${task.frames.join(", ")} · ${task.attempts} attempts · ${task.failures} failures · ETA ${task.status === "running" ? duration(task.eta_s) : task.eta_s === 0 ? "done" : `${duration(task.eta_s)} once it runs`}`), go("retry"), go("skip")),
    );
    attemptsBox.replaceChildren(el("h2", {}, "Attempts"), el("table", { id: "attempts" },
      el("thead", {}, el("tr", {}, ["#", "worker", "state", "started", "ended", "ran", "CPU", "exit", "peak memory", "message"].map((h) => el("th", {}, h)))),
      el("tbody", {}, task.attempts_detail.map((a) => el("tr", {},
        el("td", {}, a.id), el("td", {}, el("a", { href: `#/worker/${encodeURIComponent(a.worker)}` }, a.worker)),
        el("td", {}, el("span", { class: `state ${a.status}` }, a.status)),
        el("td", {}, when(a.created_at)), el("td", {}, when(a.ended_at)),
        el("td", { class: "num" }, duration(a.duration_s ?? (a.ended_at ? a.ended_at - a.created_at : Date.now() / 1000 - a.created_at))),
        el("td", { class: "num" }, duration(a.cpu_s)),
        el("td", { class: "num" }, a.exit_code ?? "–"), el("td", { class: "num" }, bytes(a.peak_rss_bytes)),
        el("td", { class: "dim" }, a.message || a.status_message || ""))))));
    const chosen = which.value;
    which.replaceChildren(el("option", { value: "" }, "every attempt"),
      ...task.attempts_detail.map((a) => el("option", { value: a.id, selected: String(a.id) === chosen }, `attempt ${a.id} on ${a.worker}`)));
  }

  async function loadLog() {
    for (;;) {
      const page = await api("GET", `${base}/log?after=${lastId}&limit=10000`);
      lines.push(...page.lines);
      if (page.lines.length) lastId = page.lines[page.lines.length - 1].id;
      if (page.next_after > lastId) lastId = page.next_after;
      if (!page.more) break;
    }
    if (lines.length > 200000) lines = lines.slice(-200000); // the page keeps the newest
    drawLog();
  }

  function drawLog() {
    const q = search.value.toLowerCase();
    const attempt = which.value ? Number(which.value) : null;
    const shown = lines.filter((l) => (attempt === null || l.attempt_id === attempt) && (!q || l.text.toLowerCase().includes(q)));
    const frag = document.createDocumentFragment();
    for (const l of shown.slice(-5000)) {
      const span = el("span", { class: l.stream });
      if (q) {
        const at = l.text.toLowerCase().indexOf(q);
        span.append(l.text.slice(0, at), el("mark", {}, l.text.slice(at, at + q.length)), l.text.slice(at + q.length), "\n");
      } else span.append(l.text + "\n");
      frag.append(span);
    }
    log.replaceChildren(frag);
    log.dataset.lines = shown.length;
    if (follow.checked) log.scrollTop = log.scrollHeight;
  }

  function save() {
    const attempt = which.value ? Number(which.value) : null;
    const text = lines.filter((l) => attempt === null || l.attempt_id === attempt).map((l) => l.text).join("\n") + "\n";
    const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/plain" })), download: `job${id}-block${b}-task${i}.log` });
    a.click();
    URL.revokeObjectURL(a.href);
  }

  await Promise.all([loadTask(), loadLog()]);
  const more = throttle(loadLog, 100);
  const again = throttle(loadTask, 250);
  return {
    job: id,
    reload() { loadTask(); loadLog(); },
    onEvent(kind, data) {
      if (data.job_id !== id || data.block !== b || data.index !== i) return;
      if (kind === "log" && data.last_line > lastId) more();
      if (kind === "task") again();
    },
  };
}
