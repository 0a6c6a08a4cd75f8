// The room's connection: one Socket.IO socket on /room, the client's copy of the room state,
// and the connection status (connecting, live = connected, reconnecting, ended). The status is
// only the connection's: whether the session is on air is session.js's badge.
//
// After every connect, automatic reconnects included, the client asks for `state.get` and
// replaces its whole state with the reply. Events that arrive while that request is out are
// kept and applied again on top of the new state (every handler is idempotent), so nothing
// that happened in between is lost or counted twice. The server's `state.stale` (its message
// queue was lost for a while: events may have been missed) asks for the same reload.

import { io } from "../../vendor/socket.io-4.8.4/socket.io.esm.min.js";
import { t } from "../i18n.js";

const ACK_TIMEOUT_MS = 10000;
const RETRY_SYNC_MS = 2000;
const STALE_SPREAD_MS = 1000; // every client gets state.stale at once: spread their reloads
const ENDED = "this session has ended"; // the server's refusal (rooms/session.py)

export class Room {
  /** @param {string} key "lesson:12" or "broadcast:3" */
  constructor(key, settings) {
    this.key = key;
    this.settings = settings; // from the page: userId, permissions, csrf, slidesUrl
    this.state = null;
    this.status = "connecting";
    this.statusDetail = "";
    this.handlers = new Map(); // event -> [fn(data)]
    this.stateHandlers = [];
    this.statusHandlers = [];
    this.syncing = null; // events received during state.get: [event, data]
    this.stale = false; // state.stale arrived during a state.get: load once more after it
    this.rejoining = false; // the server is about to disconnect us to apply a new role
    this.endedNote = null; // why the server closed the session for everyone (room.ended)
    this.socket = io("/room", {
      auth: { room: key },
      transports: ["websocket", "polling"], // WebSocket first; polling where it is blocked
      tryAllTransports: true,
      reconnectionDelayMax: 5000,
    });
    this.watchConnection();
  }

  /** Whether the user's role grants `perm` ("hand.raise", ...). */
  may(perm) {
    const perms = this.state ? this.state.me.permissions : this.settings.permissions;
    return perms.includes(perm);
  }

  get userId() {
    return this.settings.userId;
  }

  /** Call `fn(data)` for each server event `name` (and for local events of that name). */
  on(name, fn) {
    if (!this.handlers.has(name)) {
      this.handlers.set(name, []);
      if (!name.startsWith("local:")) this.socket.on(name, (data) => this.receive(name, data));
    }
    this.handlers.get(name).push(fn);
  }

  /** Call `fn(state)` after every full state replacement (first connect and reconnects). */
  onState(fn) {
    this.stateHandlers.push(fn);
    if (this.state) fn(this.state);
  }

  /** Call `fn(status, detail)` when the connection status changes. */
  onStatus(fn) {
    this.statusHandlers.push(fn);
    fn(this.status, this.statusDetail);
  }

  /** Tell the other modules about something that happened here (e.g. "local:can_publish"). */
  local(name, data) {
    for (const fn of this.handlers.get(name) || []) fn(data);
  }

  /** Send an event; resolves with its ack ({ok: true, ...} or {ok: false, error}). */
  send(name, data = {}) {
    if (!this.socket.connected) {
      return Promise.resolve({ ok: false, error: t("You are offline: try again once reconnected.") });
    }
    return new Promise((resolve) => {
      this.socket.timeout(ACK_TIMEOUT_MS).emit(name, data, (err, reply) => {
        if (err) resolve({ ok: false, error: t("The server did not answer in time.") });
        else resolve(reply && typeof reply === "object" ? reply : { ok: false, error: t("Bad reply.") });
      });
    });
  }

  receive(name, data) {
    if (this.syncing) this.syncing.push([name, data]);
    if (!this.state) return;
    for (const fn of this.handlers.get(name) || []) fn(data);
  }

  setStatus(status, detail = "") {
    this.status = status;
    this.statusDetail = detail;
    for (const fn of this.statusHandlers) fn(status, detail);
  }

  async sync() {
    this.syncing = [];
    const reply = await this.send("state.get");
    const missed = this.syncing;
    this.syncing = null;
    if (!reply.ok) {
      this.setStatus("reconnecting", reply.error || t("could not load the room"));
      setTimeout(() => { if (this.socket.connected) this.sync(); }, RETRY_SYNC_MS);
      return;
    }
    this.state = reply.state;
    for (const fn of this.stateHandlers) fn(this.state);
    for (const [name, data] of missed) this.receive(name, data);
    this.setStatus("live");
    if (this.stale) this.reload();
  }

  /** Load the whole state again (after `state.stale`), once any load in progress is done. */
  reload() {
    this.stale = Boolean(this.syncing);
    if (!this.stale && this.state && this.socket.connected) this.sync();
  }

  watchConnection() {
    const socket = this.socket;
    socket.on("connect", () => {
      this.setStatus(this.state ? "reconnecting" : "connecting", t("loading the room"));
      this.sync();
    });
    socket.on("state.stale", () => {
      setTimeout(() => this.reload(), Math.random() * STALE_SPREAD_MS);
    });
    socket.on("disconnect", (reason) => {
      if (reason === "io server disconnect" && this.rejoining) {
        // A new role (stage.role): the server closed the connection so that the next one
        // carries it. Connect again at once and load the room with the new role.
        this.rejoining = false;
        this.setStatus("reconnecting", t("joining with your new role"));
        socket.connect();
      } else if (reason === "io server disconnect" || reason === "io client disconnect") {
        this.setStatus("ended", this.endedNote || t("You left the room."));
      } else {
        this.setStatus("reconnecting", "");
      }
    });
    socket.on("connect_error", (err) => {
      if (!socket.active && err && err.message === ENDED) {
        // Ended for everyone while this page was away: the page itself now says by whom and
        // lists the recordings.
        window.location.reload();
      } else if (!socket.active) {
        // Refused by the server (not a member, signed out): retrying will not help.
        this.setStatus("ended", err && err.message ? err.message : t("The room refused the connection."));
      } else if (this.status !== "connecting") {
        this.setStatus("reconnecting", "");
      }
    });
    socket.io.on("reconnect_attempt", (attempt) => {
      this.setStatus("reconnecting", t("attempt %(n)s", { n: attempt }));
    });
  }

  /** The server is about to disconnect this client on purpose (a role change): reconnect
   * by itself instead of showing the room as ended. */
  expectRejoin() {
    this.rejoining = true;
  }

  /** The session was ended for everyone: say so when the server closes the connection. */
  sessionEnded(note) {
    this.endedNote = note;
  }

  /** Try again after the connection ended (the status bar's Reconnect button). */
  reconnect() {
    this.setStatus(this.state ? "reconnecting" : "connecting", "");
    this.socket.connect();
  }
}

// The connection, not the session: "live" here means connected (the badge says LIVE).
const STATUS_TEXT = {
  connecting: () => t("Connecting…"),
  live: () => t("Connected"),
  reconnecting: () => t("Connection lost: reconnecting…"),
  ended: () => t("Disconnected"),
};

/** Show the connection status in the bar at the top of the room. */
export function statusBar(room) {
  const bar = document.getElementById("conn");
  const text = document.getElementById("conn-text");
  const retry = document.getElementById("conn-retry");
  retry.addEventListener("click", () => room.reconnect());
  room.onStatus((status, detail) => {
    bar.dataset.state = status;
    const base = STATUS_TEXT[status] ? STATUS_TEXT[status]() : status;
    text.textContent = status === "live" || !detail ? base : t("%(status)s (%(detail)s)", { status: base, detail });
    retry.hidden = status !== "ended";
    document.getElementById("room").dataset.connection = status;
  });
}
