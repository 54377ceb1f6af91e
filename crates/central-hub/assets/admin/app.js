// The admin page: login, the session's live status (the hub's event stream, read with fetch so the
// token stays in a header), the QR with its countdown, the admin actions and a test message.
// No framework and no build step: the hub serves this file as is.

import { DEFAULT_LANGUAGE, LANGUAGES, translate } from "./i18n.js";

const TOKEN_KEY = "central-hub.token";
const USER_KEY = "central-hub.user";
const EXPIRES_KEY = "central-hub.expires_at";
const LANG_KEY = "central-hub.lang";

/** While the event stream is down (or the hub's own feed is), the status is polled this often. */
const POLL_EVERY_MS = 2000;
/** Event-stream reconnection back-off. */
const STREAM_BACKOFF_MIN_MS = 1000;
const STREAM_BACKOFF_MAX_MS = 15000;
/** The hub sends a keep-alive every 15 s: a stream silent for longer than this is dead. */
const STREAM_IDLE_MS = 40000;
/** The hub's own upstream read timeout is 30 s; a request never waits longer than this. */
const REQUEST_TIMEOUT_MS = 35000;
const MAX_ERROR_BANNERS = 3;

const LIVE_STATES = new Set(["CONNECTING", "QR_REQUIRED", "AUTHENTICATED", "READY"]);
const UNREACHABLE_CODES = new Set(["SESSION_MANAGER_UNREACHABLE", "SESSION_MANAGER_TIMEOUT"]);

const $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
};

const app = {
  lang: pickLanguage(),
  token: sessionStorage.getItem(TOKEN_KEY),
  user: readJson(sessionStorage.getItem(USER_KEY)),
  /** The latest StatusBody, from the stream or a poll. */
  status: null,
  /** The session-manager is unreachable from the hub (from a 502/504 answer). */
  managerDown: false,
  managerUrl: null,
  /** The hub cannot be reached at all (fetch failed), with the cause. */
  hubError: null,
  /** The event stream is open and the hub's own feed from the manager is live. */
  streamOpen: false,
  upstreamLive: false,
  busy: new Set(),
  feed: null,
  pollTimer: null,
  countdownTimer: null,
  expiryTimer: null,
};

function readJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function pickLanguage() {
  const saved = localStorage.getItem(LANG_KEY);
  return LANGUAGES.includes(saved) ? saved : DEFAULT_LANGUAGE;
}

const t = (key, params) => translate(app.lang, key, params);

// ---------------------------------------------------------------------------------------------
// HTTP

/** An answer of the hub that is not a success: carries the error body (`code`, `hint`, ...). */
class HubError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || `HTTP_${status}`;
    this.hint = body?.hint || "";
    this.requestId = body?.request_id || "";
    this.detail = body?.detail || {};
  }
}

/** A request to the hub that could not be made (network down, hub stopped, timeout). */
class NetworkError extends Error {}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (app.token) headers.Authorization = `Bearer ${app.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    throw new NetworkError(error?.name === "TimeoutError" ? `${REQUEST_TIMEOUT_MS / 1000} s` : error.message);
  }
  const text = await response.text().catch(() => "");
  const json = readJson(text);
  if (!response.ok) {
    const failure = new HubError(response.status, json);
    noteManagerReachability(failure);
    if (response.status === 401 && app.token) sessionExpired();
    throw failure;
  }
  app.hubError = null;
  return json;
}

/** Keeps the unreachable banner in step with what the hub answers. */
function noteManagerReachability(failure) {
  if (UNREACHABLE_CODES.has(failure.code)) {
    app.managerDown = true;
    app.managerUrl = failure.detail?.url || app.managerUrl;
  }
}

// ---------------------------------------------------------------------------------------------
// Live updates: the event stream, and polling while it (or the hub's own feed) is down

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

/** Polls every 2 s exactly while the live stream cannot be trusted. */
function updatePolling() {
  const needed = Boolean(app.token) && !(app.streamOpen && app.upstreamLive);
  if (needed && app.pollTimer === null) {
    app.pollTimer = setInterval(pollStatus, POLL_EVERY_MS);
    pollStatus();
  } else if (!needed && app.pollTimer !== null) {
    clearInterval(app.pollTimer);
    app.pollTimer = null;
  }
}

let pollInFlight = false;

async function pollStatus() {
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

function startLive() {
  stopLive();
  app.feed = new EventFeed(onFeedEvent, onFeedOpenChange);
  app.feed.start();
  updatePolling();
}

function stopLive() {
  app.feed?.stop();
  app.feed = null;
  app.streamOpen = false;
  app.upstreamLive = false;
  if (app.pollTimer !== null) clearInterval(app.pollTimer);
  app.pollTimer = null;
}

// ---------------------------------------------------------------------------------------------
// Login and logout

async function login(event) {
  event.preventDefault();
  const email = $("login-email").value.trim();
  const password = $("login-password").value;
  const box = $("login-error");
  box.hidden = true;
  if (!email || !password) {
    $(email ? "login-password" : "login-email").focus();
    $(email ? "login-password" : "login-email").reportValidity();
    return;
  }
  const submit = $("login-submit");
  submit.disabled = true;
  submit.textContent = t("login.busy");
  try {
    const answer = await api("POST", "/auth/login", { email, password });
    if (answer.user?.role !== "admin") {
      // The page shows the QR that links the company's account: administrators only. A client
      // token is not kept.
      fillErrorBox(box, { message: t("login.admins_only", { id: answer.user?.cliente_id ?? "" }) });
      box.hidden = false;
      $("login-password").value = "";
      return;
    }
    app.token = answer.token;
    app.user = answer.user;
    sessionStorage.setItem(TOKEN_KEY, answer.token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(answer.user));
    sessionStorage.setItem(EXPIRES_KEY, answer.expires_at);
    $("login-password").value = "";
    clearErrors();
    enterDashboard();
  } catch (error) {
    fillErrorBox(box, describe(error));
    box.hidden = false;
    $("login-password").focus();
  } finally {
    submit.disabled = false;
    submit.textContent = t("login.submit");
  }
}

function logout(message) {
  stopLive();
  clearTimeout(app.expiryTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  sessionStorage.removeItem(EXPIRES_KEY);
  app.token = null;
  app.user = null;
  app.status = null;
  app.managerDown = false;
  app.hubError = null;
  clearErrors();
  showLogin();
  if (message) {
    const box = $("login-error");
    fillErrorBox(box, { message });
    box.hidden = false;
  }
}

function sessionExpired() {
  logout(t("error.session_expired"));
}

function showLogin() {
  $("dashboard").hidden = true;
  $("login-view").hidden = false;
  $("logout").hidden = true;
  $("whoami").hidden = true;
  render();
  $("login-email").focus();
}

function enterDashboard() {
  $("login-view").hidden = true;
  $("login-error").hidden = true;
  $("dashboard").hidden = false;
  $("logout").hidden = false;
  $("whoami").hidden = false;
  if (app.user?.cliente_id) $("send-cliente").value = String(app.user.cliente_id);
  const expiresAt = Date.parse(sessionStorage.getItem(EXPIRES_KEY) || "");
  clearTimeout(app.expiryTimer);
  if (Number.isFinite(expiresAt)) {
    // setTimeout overflows past ~24 days; tokens live far less.
    app.expiryTimer = setTimeout(sessionExpired, Math.max(0, Math.min(expiresAt - Date.now(), 2 ** 31 - 1)));
  }
  startLive();
  render();
}

// ---------------------------------------------------------------------------------------------
// Actions

async function runAction(name, path, body, doneKey) {
  if (app.busy.has(name)) return;
  app.busy.add(name);
  clearErrors();
  hideNotice();
  render();
  try {
    const answer = await api("POST", path, body);
    showNotice(t(doneKey));
    if (name === "clear") showBackupWarning(answer?.backup_details);
    // The stream brings the new state; a poll covers the time until it does.
    if (!(app.streamOpen && app.upstreamLive)) pollStatus();
  } catch (error) {
    if (!(error instanceof HubError && error.status === 401)) showError(describe(error));
  } finally {
    app.busy.delete(name);
    render();
  }
}

// A clear-session backup still holds a working login of the linked device: say so until the page
// is reloaded (the manager keeps SESSION_BACKUP_RETENTION of them).
function showBackupWarning(backup) {
  const warning = $("backup-warning");
  warning.hidden = !backup?.contains_login;
  if (warning.hidden) return;
  $("backup-path").textContent = backup.path;
}

function confirmClear() {
  const dialog = $("confirm-clear");
  dialog.returnValue = "";
  hideNotice();
  $("backup-warning").hidden = true;
  dialog.showModal();
}

function onConfirmClearClosed() {
  const dialog = $("confirm-clear");
  if (dialog.returnValue === "confirm") {
    runAction("clear", "/api/admin/whatsapp/clear-session", undefined, "done.clear");
  }
  $("clear-session").focus();
}

async function sendTest(event) {
  event.preventDefault();
  const form = $("send-form");
  const result = $("send-result");
  result.hidden = true;
  if (!form.reportValidity()) return;
  const to = $("send-to").value.trim();
  const message = $("send-message").value;
  const cliente = $("send-cliente").value.trim();
  app.busy.add("send");
  clearErrors();
  render();
  try {
    const answer = await api("POST", `/api/whatsapp/${encodeURIComponent(cliente)}/send`, { to, message });
    result.textContent = t("send.sent", { to: answer.data.to, id: answer.data.message_id });
    result.hidden = false;
  } catch (error) {
    if (!(error instanceof HubError && error.status === 401)) showError(describe(error));
  } finally {
    app.busy.delete("send");
    render();
  }
}

// ---------------------------------------------------------------------------------------------
// Banners

/** What a failure looks like to the admin: sentence, hint, code, request id. */
function describe(error) {
  if (error instanceof HubError) {
    return { message: error.message, hint: error.hint, code: error.code, requestId: error.requestId };
  }
  if (error instanceof NetworkError) {
    return { message: t("error.network", { cause: error.message }), hint: t("error.network_hint") };
  }
  return { message: String(error?.message || error) };
}

function fillErrorBox(box, { message, hint, code, requestId }) {
  box.replaceChildren();
  const title = document.createElement("p");
  title.className = "banner-title";
  title.textContent = message;
  box.append(title);
  if (hint) {
    const line = document.createElement("p");
    line.className = "banner-hint";
    const label = document.createElement("strong");
    label.textContent = t("banner.hint");
    line.append(label, " ", hint);
    box.append(line);
  }
  if (code || requestId) {
    const meta = document.createElement("p");
    meta.className = "banner-meta";
    if (code) {
      const codeText = document.createElement("code");
      codeText.textContent = code;
      meta.append(`${t("banner.code")}: `, codeText);
    }
    if (requestId) {
      const id = document.createElement("code");
      id.textContent = requestId;
      meta.append(code ? " · " : "", `${t("banner.request")}: `, id);
    }
    box.append(meta);
  }
}

function showError(failure) {
  const list = $("errors");
  const banner = document.createElement("div");
  banner.className = "banner banner-error";
  banner.setAttribute("role", "alert");
  banner.dataset.code = failure.code || "";
  const body = document.createElement("div");
  body.className = "banner-body";
  fillErrorBox(body, failure);
  const close = document.createElement("button");
  close.type = "button";
  close.className = "banner-close";
  close.setAttribute("aria-label", t("banner.dismiss"));
  close.textContent = "×";
  close.addEventListener("click", () => banner.remove());
  banner.append(body, close);
  list.prepend(banner);
  while (list.children.length > MAX_ERROR_BANNERS) list.lastElementChild.remove();
}

function clearErrors() {
  $("errors").replaceChildren();
}

/** How long a success notice stays (the indicator keeps showing the state itself). */
const NOTICE_MS = 6000;
let noticeTimer = null;

function showNotice(text) {
  const notice = $("notice");
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(hideNotice, NOTICE_MS);
}

function hideNotice() {
  $("notice").hidden = true;
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** The indicator's tone and label for a status (the design's four visual states). */
function viewOf(status) {
  if (!status) return { tone: "unknown", label: t("state.unknown") };
  switch (status.state) {
    case "READY":
      return { tone: "connected", label: t("state.connected", { phone: status.phone_number || "?" }) };
    case "QR_REQUIRED":
      return { tone: "waiting", label: t("state.waiting_scan") };
    case "CONNECTING":
      return { tone: "connecting", label: t("state.connecting") };
    case "AUTHENTICATED":
      return { tone: "connecting", label: t("state.syncing") };
    case "ERROR":
      return { tone: "disconnected", label: t("state.error") };
    default:
      return { tone: "disconnected", label: t("state.disconnected") };
  }
}

/** What to do now, in the page's language; the manager's own words for errors (they say which step). */
function advice(status) {
  if (!status) return "";
  const key = `advice.${String(status.state).toLowerCase()}`;
  const local = t(key);
  return status.state === "ERROR" || local === key ? status.recommended_action || "" : local;
}

function render() {
  const status = app.status;
  const view = viewOf(status);
  const indicator = $("indicator");
  indicator.dataset.tone = view.tone;
  indicator.dataset.state = status?.state || "";
  indicator.classList.toggle("stale", app.managerDown);
  setText("state-label", view.label);
  const since = status?.since ? new Date(status.since) : null;
  setText("state-since", since && !Number.isNaN(since.getTime())
    ? t("state.since", { time: since.toLocaleString(app.lang) }) : "");
  setText("recommended", advice(status));

  const lastError = status?.last_error;
  $("last-error").hidden = !lastError;
  if (lastError) {
    setText("last-error-message", lastError.message);
    setText("last-error-hint", lastError.hint);
    setText("last-error-code", lastError.code);
  }

  renderQr(status?.state === "QR_REQUIRED" ? status.qr : null);
  renderWhatsapp(status);

  const state = status?.state;
  const acting = app.busy.has("connect") || app.busy.has("disconnect") || app.busy.has("clear");
  $("connect").disabled = acting || (state !== undefined && LIVE_STATES.has(state));
  $("disconnect").disabled = acting || !LIVE_STATES.has(state);
  $("clear-session").disabled = acting;
  for (const id of ["connect", "disconnect", "clear-session"]) {
    $(id).setAttribute("aria-busy", String(acting));
  }

  const canSend = Boolean(status?.can_send_messages);
  const sending = app.busy.has("send");
  $("pairing-submit").disabled = acting || (state !== undefined && LIVE_STATES.has(state) && state !== "QR_REQUIRED");
  $("send-submit").disabled = !canSend || sending;
  $("send-submit").textContent = t(sending ? "send.busy" : "send.submit");
  $("send-not-ready").hidden = canSend;
  // A confirmation belongs to the connection it was sent over.
  if (!canSend) $("send-result").hidden = true;

  $("banner-unreachable").hidden = !(app.token && app.managerDown);
  if (app.managerDown) {
    setText("banner-unreachable-body", t("banner.unreachable.body", { url: app.managerUrl ? ` (${app.managerUrl})` : "" }));
    setText("banner-unreachable-hint", t("banner.unreachable.hint"));
  }
  $("banner-hub").hidden = !(app.token && app.hubError);
  if (app.hubError) setText("banner-hub-title", t("error.network", { cause: app.hubError }));

  const live = app.streamOpen && app.upstreamLive;
  const footer = $("live");
  footer.dataset.live = String(live);
  footer.textContent = app.token ? t(live ? "footer.live" : "footer.polling") : "";

  $("whoami").textContent = app.user ? t("signed_in_as", { email: app.user.email }) : "";
}

function renderQr(qr) {
  const card = $("qr-card");
  const image = $("qr-image");
  card.hidden = !qr;
  if (!qr) {
    image.removeAttribute("src");
    card.dataset.expiresAt = "";
    return;
  }
  if (image.getAttribute("src") !== qr.base64) image.src = qr.base64;
  image.alt = t("qr.alt");
  card.dataset.expiresAt = String(qr.expires_at);
  card.dataset.attempt = String(qr.attempts);
  setText("qr-attempt", t("qr.attempt", { n: qr.attempts }));
  renderCountdown();
}

// Linking by phone number and the WhatsApp build (self-contained: the pairing code, a credential like
// the QR, reaches admins only; the build line says whether the bridge found what it needs).
function renderWhatsapp(status) {
  const wa = status?.whatsapp;
  $("wa-build").hidden = !wa;
  if (wa) {
    const key = !wa.compatible ? "wa.incompatible" : wa.features_disabled.length ? "wa.disabled" : "wa.compatible";
    setText("wa-build", t(key, {
      build: wa.build, missing: wa.missing_required.join(", "), features: wa.features_disabled.join(", "),
    }));
  }
  const pairing = status?.state === "QR_REQUIRED" ? status.pairing_code : null;
  $("pairing-box").hidden = !pairing;
  if (pairing) {
    setText("pairing-code", pairing.code);
    $("pairing-box").dataset.expiresAt = String(pairing.expires_at);
    $("pairing-box").dataset.attempt = String(pairing.attempts);
  }
}

function linkWithPhone(event) {
  event.preventDefault();
  const phone = $("pairing-phone").value.trim();
  if (!phone) return;
  runAction("connect", "/api/admin/whatsapp/connect", { pairing_phone: phone }, "done.connect");
}

function renderCountdown() {
  const card = $("qr-card");
  const expiresAt = Number(card.dataset.expiresAt);
  if (card.hidden || !expiresAt) return;
  const seconds = Math.max(0, Math.ceil((expiresAt - Date.now()) / 1000));
  const countdown = $("qr-countdown");
  countdown.classList.toggle("expired", seconds === 0);
  countdown.textContent = seconds > 0 ? t("qr.expires_in", { seconds }) : t("qr.expired");
}

function setText(id, text) {
  const element = $(id);
  if (element.textContent !== text) element.textContent = text;
}

function applyLanguage() {
  document.documentElement.lang = app.lang;
  document.title = t("app.title");
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of document.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
  $("lang").value = app.lang;
  render();
}

// ---------------------------------------------------------------------------------------------
// Start

function init() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout());
  $("connect").addEventListener("click", () =>
    runAction("connect", "/api/admin/whatsapp/connect", undefined, "done.connect"));
  $("disconnect").addEventListener("click", () =>
    runAction("disconnect", "/api/admin/whatsapp/disconnect", undefined, "done.disconnect"));
  $("clear-session").addEventListener("click", confirmClear);
  $("pairing-form").addEventListener("submit", linkWithPhone);
  $("confirm-clear").addEventListener("close", onConfirmClearClosed);
  $("send-form").addEventListener("submit", sendTest);
  $("lang").addEventListener("change", (event) => {
    app.lang = LANGUAGES.includes(event.target.value) ? event.target.value : DEFAULT_LANGUAGE;
    localStorage.setItem(LANG_KEY, app.lang);
    applyLanguage();
  });
  app.countdownTimer = setInterval(renderCountdown, 250);
  applyLanguage();
  if (app.token && app.user?.role === "admin") enterDashboard();
  else if (app.token) logout();
  else showLogin();
  document.body.dataset.ready = "true";
}

init();
