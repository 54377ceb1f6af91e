// Dashboard section "Mensajes recibidos": the latest incoming messages (phone, time, text or type,
// client), from `GET /api/messages?direction=in`, polled every few seconds while the dashboard is
// shown. Drawn with text nodes only: a message's text is never read as HTML.

import { HubError, api } from "./api.js";
import { $, app, render, t } from "./state.js";

const POLL_MS = 5000;
const SHOWN = 20;

const view = { messages: [], timer: null, loading: false, failed: false, loaded: false };

async function refresh() {
  if (view.loading || !app.token) return;
  view.loading = true;
  try {
    const answer = await api("GET", `/api/messages?direction=in&limit=${SHOWN}`);
    view.messages = answer?.messages || [];
    view.failed = false;
    view.loaded = true;
  } catch (error) {
    // A poll that fails says so under the list; the next one tries again.
    view.failed = !(error instanceof HubError && error.status === 401);
  } finally {
    view.loading = false;
  }
  render();
}

function when(message) {
  const at = message.timestamp ? new Date(message.timestamp) : new Date(message.stored_at);
  return Number.isNaN(at.getTime()) ? "" : at.toLocaleString(app.lang);
}

function item(message) {
  const li = document.createElement("li");
  li.className = "inbox-item";
  li.dataset.messageId = message.message_id;
  const head = document.createElement("p");
  head.className = "inbox-head";
  const phone = document.createElement("strong");
  phone.textContent = message.phone ? `+${message.phone}` : "?";
  const meta = document.createElement("span");
  meta.className = "muted small";
  const cliente =
    message.cliente_id === null ? t("inbox.no_cliente") : t("inbox.cliente", { id: message.cliente_id });
  meta.textContent = ` · ${when(message)} · ${cliente}`;
  head.append(phone, meta);
  const body = document.createElement("p");
  body.className = "inbox-text";
  if (message.text) {
    body.textContent = message.text;
  } else {
    body.classList.add("muted");
    body.textContent = t("inbox.media", { type: message.type });
  }
  li.append(head, body);
  return li;
}

export function draw() {
  // Polls while the dashboard is shown, stops when the admin leaves it.
  const shown = !$("dashboard").hidden && Boolean(app.token);
  if (shown && view.timer === null) {
    view.timer = setInterval(refresh, POLL_MS);
    refresh();
  } else if (!shown && view.timer !== null) {
    clearInterval(view.timer);
    view.timer = null;
    view.loaded = false;
  }
  const list = $("inbox-list");
  const key = view.messages.map((m) => m.id).join(",") + `|${app.lang}`;
  if (list.dataset.key !== key) {
    list.dataset.key = key;
    list.replaceChildren(...view.messages.map(item));
  }
  $("inbox-empty").hidden = !view.loaded || view.messages.length > 0;
  $("inbox-load-error").hidden = !view.failed;
}
