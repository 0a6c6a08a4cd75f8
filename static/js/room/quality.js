// The viewer's choice of video quality on this device: Auto (the media server sends what the
// connection carries), High, Low, or Audio only (a data saver: slides and sound, no video).
// Kept in localStorage; player.js sends it with each media.view and, when it changes, to
// every view at once (media.quality).

const KEY = "lectern:quality"; // localStorage: one of CHOICES ("auto" when missing)
const CHOICES = ["auto", "high", "low", "audio"];

let choice = "auto";

/** The viewer's choice: "auto" | "high" | "low" | "audio". */
export function current() {
  return choice;
}

function stored() {
  try {
    const value = localStorage.getItem(KEY);
    return CHOICES.includes(value) ? value : "auto";
  } catch {
    return "auto"; // storage blocked
  }
}

function keep(value) {
  try {
    if (value === "auto") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, value);
  } catch {
    // storage blocked: the choice lasts this page only
  }
}

/** Show the choice kept on this device in the page's select; `onChange(choice)` when the
 * viewer picks another. */
export function init(onChange) {
  choice = stored();
  const select = document.getElementById("quality-select");
  select.value = choice;
  select.addEventListener("change", () => {
    if (!CHOICES.includes(select.value)) return;
    choice = select.value;
    keep(choice);
    onChange(choice);
  });
}

/** Hide the choice where nothing is viewed over WebRTC (the HLS tier plays instead). */
export function show(shown) {
  document.getElementById("view-quality").hidden = !shown;
}
