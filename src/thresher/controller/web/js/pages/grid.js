// A block's tasks drawn from runs (state, first, last): a grid of cells and a frame strip to
// drag-select a range. Both draw runs, never one object per task, so 100,000 tasks stay fast.
import { el, STATES } from "../dom.js";

const COLOURS = Object.fromEntries(STATES.map((s) => [s, getComputedStyle(document.documentElement).getPropertyValue(`--${s}`).trim() || "#555"]));

/** Count tasks per state (for the page and for tests reading `data-*` of the canvas). */
function tally(runs) {
  const n = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const r of runs) n[r.status] = (n[r.status] || 0) + r.last - r.first + 1;
  return n;
}

export function taskGrid({ width, onPick }) {
  const canvas = el("canvas", { class: "grid" });
  let layout = null;
  function draw(data) {
    const n = data.task_count;
    const cell = Math.max(2, Math.min(16, Math.floor(Math.sqrt((width * 360) / Math.max(n, 1)))));
    const gap = cell >= 6 ? 1 : 0;
    const cols = Math.max(1, Math.floor(width / cell));
    const rows = Math.ceil(n / cols);
    canvas.width = cols * cell;
    canvas.height = Math.max(rows * cell, cell);
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, canvas.width, canvas.height);
    for (const r of data.runs) {
      g.fillStyle = COLOURS[r.status] || "#555";
      let i = r.first;
      while (i <= r.last) {
        const row = Math.floor(i / cols), col = i % cols;
        const span = Math.min(cols - col, r.last - i + 1);
        if (gap) for (let k = 0; k < span; k++) g.fillRect((col + k) * cell, row * cell, cell - gap, cell - gap);
        else g.fillRect(col * cell, row * cell, span * cell, cell);
        i += span;
      }
    }
    layout = { cell, cols, n };
    Object.assign(canvas.dataset, tally(data.runs), { tasks: n });
  }
  canvas.addEventListener("click", (ev) => {
    if (!layout) return;
    const rect = canvas.getBoundingClientRect();
    const col = Math.floor(((ev.clientX - rect.left) * canvas.width) / rect.width / layout.cell);
    const row = Math.floor(((ev.clientY - rect.top) * canvas.height) / rect.height / layout.cell);
    const index = row * layout.cols + col;
    if (index < layout.n) onPick(index);
  });
  return { node: canvas, draw };
}

export function frameStrip({ onSelect }) {
  const canvas = el("canvas", { class: "strip", height: 28 });
  let data = null, sel = null, dragFrom = null;
  const indexAt = (ev) => {
    const rect = canvas.getBoundingClientRect();
    const f = Math.min(Math.max((ev.clientX - rect.left) / rect.width, 0), 0.999999);
    return Math.floor(f * data.task_count);
  };
  function draw(next) {
    if (next) data = next;
    if (!data) return;
    const w = (canvas.width = canvas.clientWidth || 900);
    const h = canvas.height;
    const g = canvas.getContext("2d");
    const x = (i) => (i / data.task_count) * w;
    for (const r of data.runs) {
      g.fillStyle = COLOURS[r.status] || "#555";
      g.fillRect(Math.floor(x(r.first)), 0, Math.max(1, Math.ceil(x(r.last + 1) - x(r.first))), h);
    }
    if (sel) {
      g.fillStyle = "rgba(255,255,255,.35)";
      g.fillRect(x(sel[0]), 0, Math.max(2, x(sel[1] + 1) - x(sel[0])), h);
      g.strokeStyle = "#fff";
      g.strokeRect(x(sel[0]) + 0.5, 0.5, Math.max(2, x(sel[1] + 1) - x(sel[0])) - 1, h - 1);
    }
  }
  canvas.addEventListener("mousedown", (ev) => { if (data) { dragFrom = indexAt(ev); sel = [dragFrom, dragFrom]; draw(); } });
  canvas.addEventListener("mousemove", (ev) => {
    if (dragFrom === null) return;
    const i = indexAt(ev);
    sel = [Math.min(dragFrom, i), Math.max(dragFrom, i)];
    draw();
  });
  window.addEventListener("mouseup", () => {
    if (dragFrom === null) return;
    dragFrom = null;
    onSelect(sel);
  });
  return { node: canvas, draw, clear() { sel = null; draw(); onSelect(null); } };
}
