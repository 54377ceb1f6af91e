// The admin page's entry module: puts the parts together and starts the page. Login, the session's
// live status (event stream, polling), the QR with its countdown, the admin actions and a test
// message each live in their own module; no framework and no build step: the hub serves these
// files as they are.
//
// Adding a dashboard section: its `<section>` in index.html (inside #dashboard), a module
// `section-<name>.js` exporting `draw()` (redraw it from `app`) and, if it has controls, `init()`
// (wire them), and one line in SECTIONS below. The hub embeds the module: add it to the asset
// list in `src/routes/admin_page.rs` (a test there fails until it is).

import * as banners from "./banners.js";
import { DEFAULT_LANGUAGE, LANGUAGES } from "./i18n.js";
import * as live from "./live.js";
import * as actions from "./section-actions.js";
import * as campaigns from "./section-campaigns.js";
import * as inbox from "./section-inbox.js";
import * as pairing from "./section-pairing.js";
import * as qr from "./section-qr.js";
import * as send from "./section-send.js";
import * as status from "./section-status.js";
import * as webhooks from "./section-webhooks.js";
import * as session from "./session.js";
import { $, LANG_KEY, app, onRender, render, t } from "./state.js";

/** The dashboard's sections, top to bottom. */
const SECTIONS = [status, qr, actions, pairing, send, inbox, campaigns, webhooks];

/** Everything that draws, in drawing order: the sections, then the page's frame. */
const PARTS = [...SECTIONS, banners, live, session];

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

function start() {
  for (const part of PARTS) {
    part.init?.();
    onRender(part.draw);
  }
  $("lang").addEventListener("change", (event) => {
    app.lang = LANGUAGES.includes(event.target.value) ? event.target.value : DEFAULT_LANGUAGE;
    localStorage.setItem(LANG_KEY, app.lang);
    applyLanguage();
  });
  applyLanguage();
  session.resume();
  document.body.dataset.ready = "true";
}

start();
