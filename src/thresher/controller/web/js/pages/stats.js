// Statistics: frames and render hours by engine, user, site, host and day; failure rates;
// queue waits. Computed by the store in SQL (GET /api/v1/stats).
import { api } from "../app.js";
import { el, colourOf, duration } from "../dom.js";
import { barChart } from "../charts.js";

export async function render(main) {
  const span = el("select", { id: "stats-span", onchange: () => load() }, [["86400", "last day"], ["604800", "last 7 days"], ["2678400", "last 31 days"], ["0", "all time"]].map(([v, t]) => el("option", { value: v, selected: v === "604800" }, t)));
  const box = el("div", { class: "cols" });
  main.append(el("h1", {}, "Statistics"), el("div", { class: "toolbar" }, span), box);
  const engines = Object.fromEntries((await api("GET", "/api/v1/engines")).engines.map((e) => [e.name, e]));

  function table(rows) {
    return el("table", {}, el("thead", {}, el("tr", {}, ["", "frames", "render h", "CPU h", "attempts", "failed", "failure rate"].map((h) => el("th", { class: h ? "num" : "" }, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, el("td", {}, r.key), el("td", { class: "num" }, r.frames), el("td", { class: "num" }, r.render_hours.toFixed(2)), el("td", { class: "num" }, r.cpu_hours.toFixed(2)),
        el("td", { class: "num" }, r.attempts), el("td", { class: "num" }, r.failed), el("td", { class: "num" }, `${(100 * r.failure_rate).toFixed(1)}%`)))));
  }

  async function load() {
    const s = Number(span.value);
    const st = await api("GET", `/api/v1/stats?since=${s ? Date.now() / 1000 - s : 0}`);
    const panel = (title, ...kids) => el("div", { class: "panel", dataset: { stat: title } }, el("h2", {}, title), ...kids);
    box.replaceChildren(
      panel("Render hours by engine", barChart(st.by_engine.map((r) => ({ label: r.key, value: r.render_hours, colour: colourOf(r.key, engines) })), { format: (v) => `${v.toFixed(2)} h` }), table(st.by_engine)),
      panel("Frames by day", barChart(st.by_day.map((r) => ({ label: r.key, value: r.frames })), {}), table(st.by_day)),
      panel("By user", barChart(st.by_user.map((r) => ({ label: r.key, value: r.frames })), {}), table(st.by_user)),
      panel("By site", table(st.by_site)),
      panel("Failure rate by host", barChart(st.by_host.map((r) => ({ label: r.key, value: 100 * r.failure_rate, colour: "#e5484d" })), { format: (v) => `${v.toFixed(1)}%` }), table(st.by_host)),
      panel("Queue wait by user (submit → first task)", el("table", {}, el("tbody", {}, st.queue_wait_by_user.map((w) => el("tr", {}, el("td", {}, w.key), el("td", { class: "num" }, `${w.jobs} jobs`), el("td", { class: "num" }, `mean ${duration(w.mean_s)}`), el("td", { class: "num" }, `max ${duration(w.max_s)}`)))))),
    );
  }

  await load();
  return { reload: load };
}
