// The stage in a broadcast: hosts invite attendees to speak and send them back to the audience
// (from the list of people); the person moved is told (stage.role), reconnects with the new
// role, and is asked to turn on the camera, or has their camera and mic turned off.

import { t } from "../i18n.js";
import { announce, el, toast } from "./dom.js";

// room role -> its name in the page's language
const ROLES = { host: t("host"), panelist: t("panelist"), attendee: t("attendee") };

let room;
let moved = null; // the stage.role waiting for the reconnect that applies it: {role, can_publish}
const $ = (id) => document.getElementById(id);
const AUDIENCE = "attendee";
const ON_STAGE = "panelist";
const RELOADED = "lectern:stage-moved"; // survives the reload that redraws the page for a new role
const PROMPT = t("You are on stage: turn on your camera and microphone to be seen and heard.");

/** Whether this user may move people on and off the stage. */
function manages() {
  return room.may("stage.manage");
}

/** The stage button for `person` in the list of people (null where none applies). */
export function control(person) {
  if (!manages() || person.user_id === room.userId) return null;
  if (person.role !== AUDIENCE && person.role !== ON_STAGE) return null; // hosts; lessons
  const onStage = person.role === ON_STAGE;
  const button = el("button", {
    type: "button",
    class: `small ${onStage ? "secondary" : ""} stage-btn`,
    text: onStage ? t("Remove from stage") : t("Invite to stage"),
    "aria-label": onStage
      ? t("Remove %(name)s from the stage", { name: person.name })
      : t("Invite %(name)s to the stage", { name: person.name }),
  });
  button.addEventListener("click", () => move(person, !onStage, button));
  return button;
}

async function move(person, promote, button) {
  button.disabled = true;
  const reply = await room.send(promote ? "stage.promote" : "stage.demote", { user_id: person.user_id });
  button.disabled = false;
  if (!reply.ok) return toast(reply.error);
  toast(promote
    ? t("%(name)s is invited to the stage.", { name: person.name })
    : t("%(name)s is back in the audience.", { name: person.name }));
}

function showPrompt(show) {
  const box = $("stage-prompt");
  box.textContent = show ? PROMPT : "";
  box.hidden = !show;
}

/** This user was moved: stop sending at once if leaving, then reconnect with the new role. */
function onMyRole(data) {
  moved = data;
  if (!data.can_publish) {
    room.state.me.can_publish = false;
    room.local("local:can_publish", false);
    showPrompt(false);
  }
  room.expectRejoin();
}

/** The fresh state after the reconnect: say what changed. The page's panels (people, the
 * moderation queue, presenter tools) are drawn for the role it was loaded with, so when the new
 * role's permissions differ the page reloads, and says what changed once it is back. */
function onState(state) {
  const after = sessionStorage.getItem(RELOADED);
  if (after !== null) {
    sessionStorage.removeItem(RELOADED);
    return tell(after === "on" && state.me.can_publish, after === "on");
  }
  if (!moved) return;
  const { can_publish: allowed } = moved;
  moved = null;
  const now = [...state.me.permissions].sort().join(" ");
  if (now !== [...room.settings.permissions].sort().join(" ")) {
    sessionStorage.setItem(RELOADED, allowed ? "on" : "off");
    window.location.reload();
    return;
  }
  tell(allowed && state.me.can_publish, allowed);
}

function tell(onStage, promoted) {
  if (onStage) {
    showPrompt(true);
    toast(PROMPT);
  } else if (!promoted) {
    toast(t("You are back in the audience: your camera and microphone are off."));
  }
}

/** A moderator's copy of someone's role, kept in the list of people. */
function onRole(data) {
  const people = room.state.presence.people;
  const person = people && people.find((p) => p.user_id === data.user_id);
  if (person) person.role = data.role;
  room.local("local:people", null);
  if (person) announce(t("%(name)s is now %(role)s.", { name: person.name, role: ROLES[data.role] || data.role }));
}

export function init(r) {
  room = r;
  room.on("stage.role", onMyRole);
  room.on("presence.role", onRole);
  room.on("local:live", (source) => { if (source === "camera") showPrompt(false); });
  room.onState(onState);
}
