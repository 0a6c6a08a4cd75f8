// Camera and microphone choice: two labelled pickers filled from enumerateDevices(), the
// choice kept in localStorage, and what is missing said in words. The pickers only know
// devices; media.js owns the tracks and swaps them on the live publication (replaceTrack).

import { t } from "../i18n.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
const KINDS = {
  videoinput: { select: "camera-select", store: "lectern.camera", noun: t("camera"), none: t("No camera found") },
  audioinput: { select: "mic-select", store: "lectern.microphone", noun: t("microphone"), none: t("No microphone found") },
};

let onChange = () => {};
let found = { videoinput: 0, audioinput: 0 }; // devices of each kind at the last look
const ids = { videoinput: new Set(), audioinput: new Set() }; // their ids, where readable

function stored(kind) {
  try {
    return localStorage.getItem(KINDS[kind].store) || "";
  } catch {
    return ""; // storage blocked (private mode, policy): choices last for the page only
  }
}

/** Remember `deviceId` as the user's `kind` ("videoinput" | "audioinput"). */
export function remember(kind, deviceId) {
  if (!deviceId) return;
  try {
    localStorage.setItem(KINDS[kind].store, deviceId);
  } catch {
    // see stored()
  }
  const select = $(KINDS[kind].select);
  if (select && [...select.options].some((o) => o.value === deviceId)) select.value = deviceId;
}

/** getUserMedia constraints for `kind` ("video" | "audio") with the chosen device, if it is
 * still there (`exact`: some browsers pass over an `ideal` device). */
export function constraint(kind, base = true) {
  const deviceKind = kind === "video" ? "videoinput" : "audioinput";
  const id = stored(deviceKind);
  if (!id || !ids[deviceKind].has(id)) return base;
  return { ...(base === true ? {} : base), deviceId: { exact: id } };
}

/** Remember the devices that `media`'s tracks actually use (the browser may pick another). */
export function rememberTracks(media) {
  for (const track of media.getTracks()) {
    const id = track.getSettings ? track.getSettings().deviceId : "";
    remember(track.kind === "video" ? "videoinput" : "audioinput", id);
  }
}

/** How many cameras and microphones the last look found ({videoinput, audioinput}). */
export function counts() {
  return { ...found };
}

function fill(kind, devices) {
  const select = $(KINDS[kind].select);
  const list = devices.filter((d) => d.kind === kind && d.deviceId);
  const anyKind = devices.filter((d) => d.kind === kind).length;
  found[kind] = anyKind;
  ids[kind] = new Set(list.map((d) => d.deviceId));
  if (!anyKind) {
    select.replaceChildren(el("option", { value: "", text: KINDS[kind].none }));
    select.disabled = true;
    return;
  }
  // Before the user allows access, browsers hide labels (and often ids): number them.
  const options = list.length
    ? list.map((d, i) => el("option", { value: d.deviceId, text: d.label || `${KINDS[kind].noun} ${i + 1}` }))
    : [el("option", { value: "", text: t("Default %(device)s", { device: KINDS[kind].noun }) })];
  select.replaceChildren(...options);
  select.disabled = !list.length || list.every((d) => !d.label);
  const wanted = stored(kind);
  if (wanted && list.some((d) => d.deviceId === wanted)) select.value = wanted;
}

/** Read the devices again and redraw the pickers; resolves with counts(). */
export async function refresh() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return counts();
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    devices = [];
  }
  fill("videoinput", devices);
  fill("audioinput", devices);
  onChange(null);
  return counts();
}

/** `changed(kind, deviceId)` runs when the user picks a device; `changed(null)` after each
 * refresh (devices plugged in or out). */
export function init(changed) {
  onChange = changed;
  for (const [kind, spec] of Object.entries(KINDS)) {
    $(spec.select).addEventListener("change", (event) => {
      remember(kind, event.target.value);
      onChange(kind, event.target.value);
    });
  }
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", refresh);
  }
}
