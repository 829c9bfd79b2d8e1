// Charts drawn as inline SVG: lines over time (resource history) and horizontal bars.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, parent) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.append(node);
  return node;
}

/**
 * A line chart of series over time. `series`: [{name, colour, points: [[t, v], ...]}];
 * `max`: the top of the scale (else the data's); `format`: how a value reads.
 */
export function lineChart(series, { max = null, format = (v) => v.toFixed(0), title = "" } = {}) {
  const W = 600, H = 200, L = 86, B = 22, T = 22;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  const all = series.flatMap((s) => s.points);
  svg("text", { x: L, y: 15 }, root).textContent = title;
  if (!all.length) {
    svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, root).textContent = "no samples yet";
    return root;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]), t0 + 1);
  const top = max ?? Math.max(...all.map((p) => p[1]), 1e-9);
  const x = (t) => L + ((W - L - 4) * (t - t0)) / (t1 - t0);
  const y = (v) => H - B - ((H - B - T) * Math.min(v, top)) / top;
  for (const f of [0, 0.5, 1]) {
    svg("line", { x1: L, x2: W - 4, y1: y(top * f), y2: y(top * f), stroke: "#262b36" }, root);
    svg("text", { x: L - 4, y: y(top * f) + 3, "text-anchor": "end" }, root).textContent = format(top * f);
  }
  svg("text", { x: L, y: H - 4 }, root).textContent = new Date(t0 * 1000).toLocaleTimeString();
  svg("text", { x: W - 4, y: H - 4, "text-anchor": "end" }, root).textContent = new Date(t1 * 1000).toLocaleTimeString();
  let lx = L + 110;
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    svg("path", { d, fill: "none", stroke: s.colour, "stroke-width": 1.5, "data-series": s.name }, root);
    svg("text", { x: lx, y: 15, style: `fill:${s.colour}` }, root).textContent = s.name;
    lx += 14 + 9 * s.name.length;
  }
  return root;
}

/** Horizontal bars: rows [{label, value, colour}], `format` for the value's text. */
export function barChart(rows, { format = (v) => String(v), title = "" } = {}) {
  const W = 600, row = 24, L = 150;
  const H = 6 + row * Math.max(rows.length, 1);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
    const top = Math.max(...rows.map((r) => r.value), 1e-9);
  rows.forEach((r, i) => {
    const yy = 2 + i * row;
    svg("text", { x: L - 6, y: yy + 16, "text-anchor": "end" }, root).textContent = r.label;
    svg("rect", { x: L, y: yy + 2, height: row - 5, width: Math.max(1, ((W - L - 80) * r.value) / top), fill: r.colour || "#3b82f6", rx: 2 }, root);
    svg("text", { x: L + 6 + ((W - L - 80) * r.value) / top, y: yy + 16 }, root).textContent = format(r.value);
  });
  return root;
}
