// The side panels as tabs (WAI-ARIA tabs pattern: arrow keys move between tabs), with a count
// of unseen activity on the tabs that are not showing.

const tabs = () => [...document.querySelectorAll('.tabs [role="tab"]')];

function select(tab, focus = false) {
  for (const other of tabs()) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
  }
  clear(tab);
  if (focus) tab.focus();
}

function clear(tab) {
  const badge = tab.querySelector(".count");
  badge.textContent = "";
  badge.hidden = true;
}

function onKey(event) {
  const all = tabs();
  const index = all.indexOf(event.currentTarget);
  const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
  let next = null;
  if (event.key in moves) next = all[(index + moves[event.key] + all.length) % all.length];
  else if (event.key === "Home") next = all[0];
  else if (event.key === "End") next = all[all.length - 1];
  if (next) {
    event.preventDefault();
    select(next, true);
  }
}

export function init() {
  for (const tab of tabs()) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", onKey);
  }
}

/** Count something new on panel `name` ("chat", "qa", ...) unless it is showing. */
export function notify(name) {
  const tab = document.getElementById(`tab-${name}`);
  if (!tab || tab.getAttribute("aria-selected") === "true") return;
  const badge = tab.querySelector(".count");
  badge.textContent = String((Number(badge.textContent) || 0) + 1);
  badge.hidden = false;
}

/** Set a persistent number on a tab (e.g. raised hands), shown even when it is selected. */
export function setCount(name, count) {
  const tab = document.getElementById(`tab-${name}`);
  if (!tab) return;
  const badge = tab.querySelector(".count");
  badge.textContent = count ? String(count) : "";
  badge.hidden = !count;
}

/** Show panel `name`. */
export function show(name) {
  const tab = document.getElementById(`tab-${name}`);
  if (tab) select(tab);
}
