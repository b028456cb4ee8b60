// The side drawer that holds one tunnel, master, service or plan. Opening
// one closes the one before (and runs its clean-up: streams, timers).
import { $, el, setText } from "./dom.js";

let cleanup = null;
let onClose = null;

// open shows the drawer and returns its body, emptied. done runs when the
// drawer is closed or reused.
export function open(title, sub, done) {
  close(false);
  cleanup = done || null;
  $("drawer").hidden = false;
  setText("dr-title", title);
  setText("dr-sub", sub || "");
  $("dr-status").replaceChildren();
  const body = $("dr-body");
  body.replaceChildren();
  $("dr-close").focus();
  return body;
}

export function setTitle(title, status) {
  setText("dr-title", title);
  if (status) $("dr-status").replaceChildren(status);
}

export function close(notify = true) {
  if (cleanup) { const c = cleanup; cleanup = null; c(); }
  $("drawer").hidden = true;
  if (notify && onClose) onClose();
}

export const isOpen = () => !$("drawer").hidden;

export function init(closed) {
  onClose = closed;
  $("dr-close").addEventListener("click", () => close());
  $("drawer").addEventListener("click", (ev) => { if (ev.target === $("drawer")) close(); });
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && isOpen()) close(); });
}

// section is a titled panel inside the drawer.
export function section(titleText, ...content) {
  const s = el("section", "panel flat");
  const head = el("div", "panel-head");
  head.append(el("h3", null, titleText));
  s.append(head, ...content);
  return s;
}
