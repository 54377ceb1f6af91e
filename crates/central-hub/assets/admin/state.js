// The page's shared state and the helpers every module uses: the signed-in session kept in
// sessionStorage, `$` (an element by id, or a loud error), `t` (a label in the page's language), and
// `render`, which redraws every part of the page from the state (each part registers its drawing).

import { DEFAULT_LANGUAGE, LANGUAGES, translate } from "./i18n.js";

export const TOKEN_KEY = "central-hub.token";
export const USER_KEY = "central-hub.user";
export const EXPIRES_KEY = "central-hub.expires_at";
export const LANG_KEY = "central-hub.lang";

export const $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
};

export function readJson(text) {
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

export const app = {
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

export const t = (key, params) => translate(app.lang, key, params);

export function setText(id, text) {
  const element = $(id);
  if (element.textContent !== text) element.textContent = text;
}

const renderers = [];

/** Adds a part's drawing to `render` (parts draw in the order they register). */
export function onRender(draw) {
  renderers.push(draw);
}

/** Redraws the whole page from `app`. */
export function render() {
  for (const draw of renderers) draw();
}

let expired = () => {};

/** Sets what happens when the hub says the token is no longer valid (the session module logs out). */
export function onSessionExpired(handler) {
  expired = handler;
}

/** The hub refused the token (401): back to the login form with a message. */
export function sessionExpired() {
  expired();
}
