// Live updates: the hub's event stream (`GET /api/admin/whatsapp/events`, read with fetch so the
// token stays in a header, reconnecting with a back-off), and polling of the status while the
// stream, or the hub's own feed from the manager, is down. Draws the footer's live/polling line.

import { HubError, NetworkError, api } from "./api.js";
import { $, app, readJson, render, sessionExpired, t } from "./state.js";

/** While the event stream is down (or the hub's own feed is), the status is polled this often. */
const POLL_EVERY_MS = 2000;
/** Event-stream reconnection back-off. */
const STREAM_BACKOFF_MIN_MS = 1000;
const STREAM_BACKOFF_MAX_MS = 15000;
/** The hub sends a keep-alive every 15 s: a stream silent for longer than this is dead. */
const STREAM_IDLE_MS = 40000;

/** Reads `GET /api/admin/whatsapp/events` with fetch, parsing the `event:`/`data:` lines itself. */
class EventFeed {
  constructor(onEvent, onOpenChange) {
    this.onEvent = onEvent;
    this.onOpenChange = onOpenChange;
    this.controller = new AbortController();
    this.received = false;
  }

  start() {
    this.run();
  }

  stop() {
    this.controller.abort();
  }

  get stopped() {
    return this.controller.signal.aborted;
  }

  async run() {
    let backoff = STREAM_BACKOFF_MIN_MS;
    while (!this.stopped) {
      this.received = false;
      try {
        await this.follow();
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof HubError && error.status === 401) {
          sessionExpired();
          return;
        }
      }
      this.onOpenChange(false);
      if (this.stopped) return;
      // A stream that delivered events was healthy: the next failure starts the back-off afresh.
      if (this.received) backoff = STREAM_BACKOFF_MIN_MS;
      await sleep(backoff, this.controller.signal);
      backoff = Math.min(backoff * 2, STREAM_BACKOFF_MAX_MS);
    }
  }

  /** One connection, until it ends; sets `received` at its first event. */
  async follow() {
    const attempt = new AbortController();
    const stopAttempt = () => attempt.abort();
    this.controller.signal.addEventListener("abort", stopAttempt, { once: true });
    let idle = setTimeout(stopAttempt, STREAM_IDLE_MS);
    try {
      const response = await fetch("/api/admin/whatsapp/events", {
        headers: { Accept: "text/event-stream", Authorization: `Bearer ${app.token}` },
        cache: "no-store",
        signal: attempt.signal,
      });
      if (!response.ok) {
        throw new HubError(response.status, readJson(await response.text().catch(() => "")));
      }
      this.onOpenChange(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(idle);
        idle = setTimeout(stopAttempt, STREAM_IDLE_MS);
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parseEventBlock(block);
          if (event) {
            this.received = true;
            this.onEvent(event.name, event.data);
          }
        }
      }
    } finally {
      clearTimeout(idle);
      this.controller.signal.removeEventListener("abort", stopAttempt);
      attempt.abort();
    }
  }
}

/** One Server-Sent Events block -> `{name, data}` (data parsed as JSON), or null (comment, bad data). */
function parseEventBlock(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return null;
  const parsed = readJson(data.join("\n"));
  return parsed === null ? null : { name, data: parsed };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

function onFeedEvent(name, data) {
  if (name === "upstream") {
    app.upstreamLive = Boolean(data.connected);
    if (data.url) app.managerUrl = data.url;
    if (app.upstreamLive) {
      app.managerDown = false;
    } else {
      // The hub lost its own feed: ask now, which tells whether the manager answers at all.
      pollStatus();
    }
  } else if (name === "status" || name === "message") {
    app.upstreamLive = true;
    app.managerDown = false;
    app.status = data;
  }
  updatePolling();
  render();
}

function onFeedOpenChange(open) {
  app.streamOpen = open;
  if (open) app.hubError = null;
  else app.upstreamLive = false;
  updatePolling();
  render();
}

/** Whether the event stream is open and the hub's own feed is live (so no poll is needed). */
export function isLive() {
  return app.streamOpen && app.upstreamLive;
}

/** Polls every 2 s exactly while the live stream cannot be trusted. */
function updatePolling() {
  const needed = Boolean(app.token) && !isLive();
  if (needed && app.pollTimer === null) {
    app.pollTimer = setInterval(pollStatus, POLL_EVERY_MS);
    pollStatus();
  } else if (!needed && app.pollTimer !== null) {
    clearInterval(app.pollTimer);
    app.pollTimer = null;
  }
}

let pollInFlight = false;

export async function pollStatus() {
  if (!app.token || pollInFlight) return;
  pollInFlight = true;
  try {
    app.status = await api("GET", "/api/admin/whatsapp/status");
    app.managerDown = false;
    app.hubError = null;
  } catch (error) {
    if (error instanceof NetworkError) app.hubError = error.message;
  } finally {
    pollInFlight = false;
    render();
  }
}

export function startLive() {
  stopLive();
  app.feed = new EventFeed(onFeedEvent, onFeedOpenChange);
  app.feed.start();
  updatePolling();
}

export function stopLive() {
  app.feed?.stop();
  app.feed = null;
  app.streamOpen = false;
  app.upstreamLive = false;
  if (app.pollTimer !== null) clearInterval(app.pollTimer);
  app.pollTimer = null;
}

/** The footer: live updates, or polling. */
export function draw() {
  const live = isLive();
  const footer = $("live");
  footer.dataset.live = String(live);
  footer.textContent = app.token ? t(live ? "footer.live" : "footer.polling") : "";
}
