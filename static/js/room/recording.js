// Recording: everyone sees when the room is being recorded; presenters start and stop it.

import { toast } from "./dom.js";

let room;
const $ = (id) => document.getElementById(id);

function render() {
  const recording = room.state.recording;
  const on = Boolean(recording && recording.status === "recording");
  $("rec").hidden = !on;
  const button = $("rec-btn");
  if (!button) return;
  button.textContent = on ? "Stop recording" : "Start recording";
  button.setAttribute("aria-pressed", String(on));
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
  toast(on ? "Recording stopped." : "Recording started.");
}

export function init(r) {
  room = r;
  const button = $("rec-btn");
  if (button) button.addEventListener("click", toggle);
  room.onState(render);
  room.on("recording.state", (data) => {
    const was = Boolean(room.state.recording);
    room.state.recording = data.recording;
    render();
    if (!room.may("recording.manage") && was !== Boolean(data.recording)) {
      toast(data.recording ? "This session is now being recorded." : "Recording stopped.");
    }
  });
}
