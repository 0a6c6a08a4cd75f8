// The live room page: read the settings the server put on #room, connect, start each part.

import * as chat from "./chat.js";
import * as hands from "./hands.js";
import * as media from "./media.js";
import * as polls from "./polls.js";
import * as presence from "./presence.js";
import * as qa from "./qa.js";
import * as recording from "./recording.js";
import { Room, statusBar } from "./signaling.js";
import * as slides from "./slides.js";
import * as stage from "./stage.js";
import * as session from "./session.js";
import * as tabs from "./tabs.js";
import * as tier from "./tier.js";

const root = document.getElementById("room");
const settings = {
  userId: Number(root.dataset.userId),
  permissions: root.dataset.permissions.split(" ").filter(Boolean),
  csrf: root.dataset.csrf,
  slidesUrl: root.dataset.slidesUrl,
};

// The height of the bar of one's own controls, fixed at the bottom on phones: the page keeps
// that much room below its end, and notices show above the bar.
const bar = root.querySelector(".toolbar");
const measure = () => document.documentElement.style.setProperty("--bar", `${bar.offsetHeight}px`);
new ResizeObserver(measure).observe(bar);

const room = new Room(root.dataset.room, settings);
tabs.init();
statusBar(room);
// tier before media: media.js asks it which tier to play as soon as the state arrives
for (const part of [presence, hands, qa, chat, polls, slides, tier, media, recording, stage, session]) part.init(room);
