// Small DOM and formatting helpers. Every piece of API data reaches the page
// as text nodes (el's string children), never parsed as HTML, so a client's
// error message cannot inject markup.

export const $ = (id) => document.getElementById(id);

// el builds an element: el("td", {class: "num"}, "12", otherNode).
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(e.dataset, v);
      // Styles go through the CSSOM: the page's CSP refuses style attributes.
      else if (k === "style") Object.assign(e.style, v);
      else e.setAttribute(k, v === true ? "" : v);
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

const nf = new Intl.NumberFormat("en-US");
export function num(n) {
  return typeof n === "number" && isFinite(n) ? nf.format(Math.round(n * 10) / 10) : "–";
}

// duration formats seconds as "1 h 5 min", "42 s".
export function duration(s) {
  if (typeof s !== "number" || !isFinite(s) || s < 0) return "unknown";
  if (s === 0) return "done";
  if (s < 1) return "< 1 s";
  s = Math.round(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) return `${d} d ${h} h`;
  if (h) return m ? `${h} h ${m} min` : `${h} h`;
  if (m) return sec ? `${m} min ${sec} s` : `${m} min`;
  return `${sec} s`;
}

export function bytes(n) {
  if (typeof n !== "number" || !isFinite(n)) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}

export function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

export function clock(d) {
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// ago is "5 s ago" / "3 min ago" for recent times, the date otherwise.
export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const t = Date.parse(iso);
  if (isNaN(t)) return iso;
  const s = Math.max(0, (now - t) / 1000);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return new Date(t).toLocaleDateString();
}

export const STATE_LABEL = {
  current: "Current",
  pending: "Upgrade pending",
  upgrading: "Upgrading",
  failed: "Failed",
  offline: "Offline",
};

// stateBadge shows a client's state; pending carries its queue position
// and lane ("Upgrade pending · #3 (jump lane)").
export function stateBadge(c) {
  let text = STATE_LABEL[c.state] || c.state;
  if (c.state === "pending" && c.position) {
    text += " · #" + nf.format(c.position);
    if (c.lane === "jump") text += " (jump lane)";
  }
  return el("span", { class: "badge st-" + c.state }, text);
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}
