// Stuck tasks: running far past their block's usual time, or silent.
import { api } from "../app.js";
import { el, duration, throttle } from "../dom.js";

export async function render(main) {
  const factor = el("input", { type: "number", value: 3, min: 1, step: 0.5, style: "width:5rem", onchange: () => load() });
  const silent = el("input", { type: "number", value: 300, min: 1, style: "width:6rem", onchange: () => load() });
  const body = el("tbody");
  main.append(el("h1", {}, "Stuck tasks"),
    el("div", { class: "toolbar" }, "past ", factor, " × their block's mean run time, or silent for ", silent, " s"),
    el("table", { id: "stuck" }, el("thead", {}, el("tr", {}, ["job", "task", "worker", "running", "usual", "why"].map((h) => el("th", {}, h)))), body));

  async function load() {
    const rows = (await api("GET", `/api/v1/stuck?factor=${factor.value}&silent_s=${silent.value}`)).tasks;
    body.replaceChildren(...(rows.length ? rows.map((t) => el("tr", {},
      el("td", {}, el("a", { href: `#/job/${t.job_id}` }, `${t.job_name} (#${t.job_id})`)),
      el("td", {}, el("a", { href: `#/task/${t.job_id}/${t.block}/${t.index}` }, `${t.block}/${t.index}`)),
      el("td", {}, el("a", { href: `#/worker/${encodeURIComponent(t.worker)}` }, t.worker)),
      el("td", { class: "num" }, duration(t.running_s)), el("td", { class: "num" }, duration(t.mean_s)), el("td", { class: "dim" }, t.why)))
      : [el("tr", {}, el("td", { colspan: 6, class: "dim" }, "Nothing is stuck."))]));
  }

  await load();
  const again = throttle(load, 1000);
  return { reload: load, onEvent(kind) { if (kind === "job") again(); } };
}
