// Ending the session: a presenter ends it for everyone (after confirming on the same button);
// everyone is told who ended it, and the page stays ended instead of reconnecting.

import { announce, toast } from "./dom.js";

const LABEL = "End for everyone";
const CONFIRM = "Confirm: end for everyone";
const CONFIRM_MS = 5000;

let room;

function ask(button) {
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.textContent = CONFIRM;
    setTimeout(() => {
      button.dataset.confirm = "";
      button.textContent = LABEL;
    }, CONFIRM_MS);
    return;
  }
  button.disabled = true;
  room.send("room.end").then((reply) => {
    if (!reply.ok) {
      button.disabled = false;
      toast(reply.error);
    }
  });
}

function onEnded(data) {
  const who = data && data.by ? data.by : "The presenter";
  const note = `${who} ended the session for everyone`;
  room.sessionEnded(note);
  announce(`${note}.`);
  toast(`${note}.`);
}

export function init(r) {
  room = r;
  room.on("room.ended", onEnded);
  const button = document.getElementById("end-session");
  if (button) button.addEventListener("click", () => ask(button));
}
