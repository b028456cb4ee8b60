// Strings by language. Every text the page shows comes from a table in
// strings/; the scripts hold keys only. The language is the browser's
// (zh* gives zh-CN, anything else en) until the user picks one, which is
// remembered in localStorage.
import en from "./strings/en.js";
import zhCN from "./strings/zh-CN.js";

export const tables = { en, "zh-CN": zhCN };
const STORE_KEY = "nodepass-exporter.lang";
const listeners = [];
let current = pick();

function pick() {
  let saved = null;
  try { saved = localStorage.getItem(STORE_KEY); } catch (_) { /* private mode */ }
  if (saved && tables[saved]) return saved;
  for (const l of navigator.languages || [navigator.language || "en"]) {
    const low = String(l).toLowerCase();
    if (low.startsWith("zh")) return "zh-CN";
    if (low.startsWith("en")) return "en";
  }
  return "en";
}

export const lang = () => current;

// t returns the text of key in the current language, with {name}
// placeholders replaced by vars[name] (inserted as text by the caller).
export function t(key, vars) {
  let s = tables[current][key];
  if (s === undefined) s = en[key];
  if (s === undefined) return key; // the key test in browser_test.go catches this
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

// apply fills the static page: data-i18n="key" sets the text, and
// data-i18n-attr="attr:key;attr:key" sets attributes.
export function apply(root) {
  document.documentElement.lang = current;
  for (const e of root.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  for (const e of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of e.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      e.setAttribute(attr, t(key));
    }
  }
}

export function setLang(l) {
  if (!tables[l] || l === current) return;
  current = l;
  try { localStorage.setItem(STORE_KEY, l); } catch (_) { /* private mode */ }
  apply(document);
  for (const f of listeners) f();
}

// onLang registers a redraw for when the language changes.
export const onLang = (f) => listeners.push(f);
