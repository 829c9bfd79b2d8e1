// Small helpers to build the DOM and format numbers and times.

/** el("td", {class: "num", onclick: f}, "text", child...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

let toastTimer = null;
export function toast(text, bad = false) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = "show" + (bad ? " error" : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.className = ""), 3000);
}

export function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function when(t) {
  if (!t) return "–";
  return new Date(t * 1000).toLocaleString();
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export const STATES = ["succeeded", "running", "queued", "failed", "skipped", "canceled", "waiting"];

/** A per-state progress bar of a job's or block's counts. */
export function progress(counts) {
  const bar = el("div", { class: "bar", title: STATES.map((s) => `${s} ${counts[s]}`).join(", ") });
  for (const s of STATES) {
    if (!counts[s]) continue;
    bar.append(el("span", { class: `s-${s}`, style: `width:${(100 * counts[s]) / Math.max(counts.total, 1)}%` }));
  }
  return bar;
}

/** Calls `fn` once per animation frame at most, however often it is asked. */
export function coalesce(fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fn(); });
  };
}

/** A stable colour for a name (engines without a colour of their own). */
export function colourOf(name, engines) {
  const e = engines && engines[name];
  if (e && e.colour) return e.colour;
  let h = 0;
  for (const c of name || "") h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h} 55% 50%)`;
}

/** Calls `fn` at most once per `ms` (the last ask is never lost): for pages that reload on
 * every change of a busy farm. */
export function throttle(fn, ms) {
  let last = 0, timer = null;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, wait);
  };
}
