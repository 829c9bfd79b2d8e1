// One worker: its facts and its resources over time (CPU, memory, network, disk, GPU), live.
import { api } from "../app.js";
import { el, bytes, when } from "../dom.js";
import { lineChart } from "../charts.js";

const CHARTS = [
  ["CPU %", [["cpu_user", "user", "#3b82f6"], ["cpu_system", "system", "#e5484d"], ["cpu_iowait", "iowait", "#d9a520"], ["cpu_nice", "nice", "#22a35a"]], { max: 100, format: (v) => `${v.toFixed(0)}%` }],
  ["Memory", [["mem_used", "used", "#a78bfa"], ["swap_used", "swap", "#e5484d"]], { format: bytes, maxKey: "mem_total" }],
  ["Load", [["load1", "load 1 min", "#3b82f6"]], { format: (v) => v.toFixed(1) }],
  ["Network", [["net_rx_bps", "in /s", "#22a35a"], ["net_tx_bps", "out /s", "#3b82f6"]], { format: bytes }],
  ["Disk I/O", [["disk_read_bps", "read /s", "#22a35a"], ["disk_write_bps", "write /s", "#e5484d"]], { format: bytes }],
  ["GPU", [["gpu_util", "util %", "#e87d0d"]], { max: 100, format: (v) => `${v.toFixed(0)}%`, optional: true }],
];

export async function render(main, [name]) {
  const facts = el("dl", { class: "facts" });
  const charts = el("div", { class: "cols", id: "charts" });
  const span = el("select", { onchange: () => load() }, [["3600", "last hour"], ["86400", "last day"], ["2678400", "last month"]].map(([v, t]) => el("option", { value: v }, t)));
  main.append(el("h1", {}, `Worker ${name}`), el("div", { class: "panel" }, facts), el("div", { class: "toolbar" }, span), charts);
  let worker = null, points = [];

  function drawFacts() {
    const w = worker;
    const rows = [["state", w.status + (w.enabled ? "" : " (drained)") + (w.nimby || w.local_nimby ? ` (NIMBY ${w.nimby || w.local_nimby})` : "") + (w.sick_since ? " (sick)" : "")],
      ["host", `${w.hostname} · ${w.os}`], ["site", w.site], ["pools", w.pools.join(", ") || "–"],
      ["cores / memory", `${w.cores} · ${bytes(w.ram_bytes)}`], ["GPUs", w.gpus], ["lanes", `${w.lanes} (${w.running} running)`],
      ["capacity", `${w.capacity_used}/${w.capacity}`], ["last seen", when(w.last_seen)]];
    facts.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  function drawCharts() {
    const last = points.length ? points[points.length - 1].values : {};
    charts.replaceChildren(...CHARTS.filter(([, keys, o]) => !o.optional || keys.some(([k]) => k in last)).map(([title, keys, o]) => {
      const series = keys.map(([k, label, colour]) => ({ name: label, colour, points: points.filter((p) => k in p.values).map((p) => [p.at, p.values[k]]) }));
      const max = o.max ?? (o.maxKey && last[o.maxKey]) ?? null;
      return el("div", { class: "panel", dataset: { chart: title } }, lineChart(series, { title, max, format: o.format }));
    }));
  }

  async function load() {
    const since = Date.now() / 1000 - Number(span.value);
    const [w, h] = await Promise.all([
      api("GET", `/api/v1/workers/${encodeURIComponent(name)}`),
      api("GET", `/api/v1/workers/${encodeURIComponent(name)}/samples?since=${since}`),
    ]);
    worker = w; points = h.points;
    drawFacts(); drawCharts();
  }

  await load();
  return {
    reload: load,
    onEvent(kind, data) {
      if (kind !== "worker" || data.worker_id !== worker.id) return;
      if (data.sample) {
        points.push({ at: Date.now() / 1000, step_s: 0, values: data.sample });
        drawCharts();
      } else api("GET", `/api/v1/workers/${encodeURIComponent(name)}`).then((w) => { worker = w; drawFacts(); });
    },
  };
}
