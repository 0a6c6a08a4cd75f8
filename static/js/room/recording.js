// Recording: everyone sees when the room is being recorded; presenters start and stop it.

import { t } from "../i18n.js";
import { toast } from "./dom.js";

let room;
const $ = (id) => document.getElementById(id);

function render() {
  const recording = room.state.recording;
  const on = Boolean(recording && recording.status === "recording");
  $("rec").hidden = !on;
  const button = $("rec-btn");
  if (!button) return;
  button.textContent = on ? t("Stop recording") : t("Start recording");
  button.setAttribute("aria-pressed", String(on));
  const auto = $("rec-auto");
  if (auto) auto.checked = Boolean(room.state.room && room.state.room.auto_record);
}

async function setAuto(event) {
  const box = event.target;
  box.disabled = true;
  const reply = await room.send("recording.auto", { on: box.checked });
  box.disabled = false;
  if (!reply.ok) {
    box.checked = !box.checked;
    return toast(reply.error);
  }
  toast(reply.on ? t("This room will record as soon as someone goes live.") : t("Automatic recording is off."));
}

async function toggle() {
  const on = Boolean(room.state.recording && room.state.recording.status === "recording");
  const button = $("rec-btn");
  button.disabled = true;
  const reply = await room.send(on ? "recording.stop" : "recording.start");
  button.disabled = false;
  if (!reply.ok) return toast(reply.error);
  room.state.recording = on ? null : reply.recording;
  render();
  toast(on ? t("Recording stopped.") : t("Recording started."));
}

export function init(r) {
  room = r;
  const button = $("rec-btn");
  if (button) button.addEventListener("click", toggle);
  const auto = $("rec-auto");
  if (auto) auto.addEventListener("change", setAuto);
  room.on("recording.auto", (data) => {
    if (room.state.room) room.state.room.auto_record = data.on;
    render();
  });
  room.onState(render);
  room.on("recording.state", (data) => {
    const was = Boolean(room.state.recording);
    room.state.recording = data.recording;
    render();
    if (!room.may("recording.manage") && was !== Boolean(data.recording)) {
      toast(data.recording ? t("This session is now being recorded.") : t("Recording stopped."));
    }
  });
}
