// Dashboard section "Webhooks": the endpoints the hub notifies (polled from `GET /api/webhooks`
// while the dashboard is shown), the create form (the signing secret is shown once, right after
// creation, and never again), delete, and the selected endpoint's recent deliveries with their
// state, attempts and last error; dead ones have a "Replay" button.

import { HubError, api } from "./api.js";
import { clearErrors, showFailure, showNotice } from "./banners.js";
import { $, app, render, setText, t } from "./state.js";

const POLL_MS = 3000;

/** The events a webhook can want (the hub's HubEventKind). */
export const EVENTS = ["message.received", "message.ack", "session.status", "campaign.progress", "campaign.completed"];

const view = { webhooks: [], selected: null, deliveries: [], secret: null, timer: null, loading: false, failed: false };

async function refresh() {
  if (view.loading || !app.token) return;
  view.loading = true;
  try {
    const answer = await api("GET", "/api/webhooks");
    view.webhooks = answer?.webhooks || [];
    if (view.selected !== null && !view.webhooks.some((w) => w.id === view.selected)) view.selected = null;
    view.deliveries =
      view.selected === null
        ? []
        : (await api("GET", `/api/webhooks/${view.selected}/deliveries?limit=20`))?.deliveries || [];
    view.failed = false;
  } catch (error) {
    view.failed = !(error instanceof HubError && error.status === 401);
  } finally {
    view.loading = false;
  }
  render();
}

async function run(work) {
  app.busy.add("webhooks");
  clearErrors();
  render();
  try {
    await work();
  } catch (error) {
    showFailure(error);
  } finally {
    app.busy.delete("webhooks");
    await refresh();
  }
}

function create(event) {
  event.preventDefault();
  const url = $("webhook-url").value.trim();
  const events = EVENTS.filter((name) => document.getElementById(`webhook-event-${name}`)?.checked);
  return run(async () => {
    const created = await api("POST", "/api/webhooks", { url, events });
    view.secret = { id: created.id, secret: created.secret };
    view.selected = created.id;
    $("webhook-url").value = "";
  });
}

function remove(webhook) {
  if (!window.confirm(t("webhooks.confirm_delete", { url: webhook.url }))) return;
  return run(async () => {
    await api("DELETE", `/api/webhooks/${webhook.id}`);
    if (view.selected === webhook.id) view.selected = null;
    if (view.secret?.id === webhook.id) view.secret = null;
    showNotice(t("webhooks.deleted"));
  });
}

function replay(delivery) {
  return run(async () => {
    await api("POST", `/api/webhooks/deliveries/${delivery.id}/replay`);
    showNotice(t("webhooks.replayed", { id: delivery.event_id }));
  });
}

function button(label, className, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = label;
  element.disabled = app.busy.has("webhooks");
  element.addEventListener("click", onClick);
  return element;
}

function listItem(webhook) {
  const item = document.createElement("li");
  item.className = "campaign-item";
  item.dataset.id = String(webhook.id);
  const pick = button(`#${webhook.id} ${webhook.url}`, "campaign-pick", () => {
    view.selected = webhook.id;
    refresh();
  });
  pick.setAttribute("aria-pressed", String(view.selected === webhook.id));
  const line = document.createElement("span");
  line.className = "campaign-line muted small";
  const owner = webhook.cliente_id === null ? t("webhooks.owner_admin") : t("webhooks.owner_client", { id: webhook.cliente_id });
  line.textContent = `${webhook.events.join(", ")} · ${owner}`;
  item.append(pick, line, button(t("webhooks.delete"), "button button-danger", () => remove(webhook)));
  return item;
}

function deliveryRow(delivery) {
  const row = document.createElement("tr");
  row.dataset.state = delivery.state;
  const error = delivery.last_error ? ` ${delivery.last_error}` : "";
  const cells = [
    delivery.event,
    delivery.event_id,
    t(`webhooks.state_${delivery.state}`),
    String(delivery.attempts),
    `${delivery.last_status ?? "—"}${error}`,
  ];
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  const action = document.createElement("td");
  if (delivery.state === "dead") action.append(button(t("webhooks.replay"), "button", () => replay(delivery)));
  row.append(action);
  return row;
}

function drawDeliveries() {
  $("webhook-deliveries").hidden = view.selected === null;
  if (view.selected === null) return;
  setText("webhook-deliveries-title", t("webhooks.deliveries_of", { id: view.selected }));
  $("webhook-delivery-rows").replaceChildren(...view.deliveries.map(deliveryRow));
  $("webhook-deliveries-empty").hidden = view.deliveries.length > 0;
}

export function init() {
  const boxes = $("webhook-events");
  for (const name of EVENTS) {
    const label = document.createElement("label");
    label.className = "checkbox";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = `webhook-event-${name}`;
    box.checked = name === "message.received";
    label.append(box, ` ${name}`);
    boxes.append(label);
  }
  $("webhook-form").addEventListener("submit", create);
  $("webhook-secret-hide").addEventListener("click", () => {
    view.secret = null;
    render();
  });
}

export function draw() {
  const shown = !$("dashboard").hidden && Boolean(app.token);
  if (shown && view.timer === null) {
    view.timer = setInterval(refresh, POLL_MS);
    refresh();
  } else if (!shown && view.timer !== null) {
    clearInterval(view.timer);
    Object.assign(view, { timer: null, webhooks: [], selected: null, deliveries: [], secret: null });
  }
  $("webhook-list").replaceChildren(...view.webhooks.map(listItem));
  $("webhook-empty").hidden = view.webhooks.length > 0;
  $("webhook-load-error").hidden = !view.failed;
  $("webhook-secret").hidden = view.secret === null;
  if (view.secret) setText("webhook-secret-value", view.secret.secret);
  $("webhook-submit").disabled = app.busy.has("webhooks");
  drawDeliveries();
}
