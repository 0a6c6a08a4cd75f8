// Small DOM helpers shared by the room's modules. Text always goes in as text nodes or
// textContent: nothing here parses HTML.

import { formatTime } from "../i18n.js";

/** Create an element: el("button", {class: "x", text: "Go", onclick: fn}, child, "text"). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/**
 * Make `list`'s children match `items` in order, reusing the element of each key so that
 * focus and in-progress input survive updates. build(item) creates an element once;
 * update(node, item) refreshes it every time.
 */
export function syncList(list, items, keyOf, build, update) {
  const old = new Map([...list.children].map((n) => [n.dataset.key, n]));
  let previous = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let node = old.get(key);
    if (node) old.delete(key);
    else {
      node = build(item);
      node.dataset.key = key;
    }
    update(node, item);
    const wanted = previous ? previous.nextElementSibling : list.firstElementChild;
    if (node !== wanted) list.insertBefore(node, wanted);
    previous = node;
  }
  for (const node of old.values()) node.remove();
}

/** Say `text` to screen-reader users (the page's assertive live region). */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A change after a tick is announced even when the same text repeats.
  setTimeout(() => { region.textContent = text; }, 50);
}

let toastTimer = null;

/** Show a short notice at the bottom of the screen, and say it to screen-reader users (the
 * notice itself is hidden from them: it comes and goes). */
export function toast(text) {
  announce(text);
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 4000);
}

/** A time of day from an ISO timestamp, as the page's language writes it, in the user's zone. */
export function clock(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return formatTime(date);
}

/** Show an error from an ack next to a control (role=alert) and clear it later. */
export function flash(node, text) {
  if (!node) return;
  node.textContent = text;
  node.hidden = !text;
}

/** True when a keyboard event comes from a place where the user types. */
export function typing(event) {
  const target = event.target;
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}
