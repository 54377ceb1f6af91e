// Dashboard section "Campañas": the campaign list with a progress bar each (polled from
// `GET /api/campaigns` while the dashboard is shown), the selected campaign's detail with its
// counts, pause reason and the actions its state allows, the failed recipients as a CSV download,
// and the create form (campaign-form.js).

import { HubError, api } from "./api.js";
import { drawForm, initForm } from "./campaign-form.js";
import { clearErrors, showFailure } from "./banners.js";
import { $, app, render, setText, t } from "./state.js";

const POLL_MS = 3000;

/** Which actions each campaign state allows. */
const ACTIONS = {
  draft: ["start", "cancel"],
  running: ["pause", "cancel"],
  paused: ["resume", "cancel"],
  completed: [],
  cancelled: [],
};

/** The button of an action (`campaign-pause` is the pause-reason banner). */
const buttonId = (action) => (action === "pause" ? "campaign-pause-button" : `campaign-${action}`);

const view = { campaigns: [], selected: null, timer: null, loading: false, failed: false };

function done(campaign) {
  const counts = campaign.counts || {};
  return (counts.sent || 0) + (counts.failed || 0) + (counts.skipped || 0);
}

function stateLabel(campaign) {
  const state = t(`campaigns.state_${campaign.state}`);
  return campaign.pause_reason ? `${state} (${t(`campaigns.reason_${campaign.pause_reason}`)})` : state;
}

async function refresh() {
  if (view.loading || !app.token) return;
  view.loading = true;
  try {
    const answer = await api("GET", "/api/campaigns");
    view.campaigns = answer?.campaigns || [];
    view.failed = false;
    if (view.selected !== null) {
      const found = view.campaigns.find((c) => c.id === view.selected.id);
      if (found) view.selected = await api("GET", `/api/campaigns/${found.id}`);
    }
  } catch (error) {
    // A poll that fails says so under the list; the next one tries again.
    view.failed = !(error instanceof HubError && error.status === 401);
  } finally {
    view.loading = false;
  }
  render();
}

function select(id) {
  view.selected = view.campaigns.find((c) => c.id === id) || null;
  render();
  refresh();
}

async function act(action) {
  const campaign = view.selected;
  if (!campaign) return;
  app.busy.add("campaign-action");
  clearErrors();
  render();
  try {
    view.selected = await api("POST", `/api/campaigns/${campaign.id}/${action}`);
  } catch (error) {
    showFailure(error);
  } finally {
    app.busy.delete("campaign-action");
    await refresh();
  }
}

/** The failed recipients as a CSV file: fetched with the token, saved through a Blob URL. */
async function downloadFailed() {
  const campaign = view.selected;
  if (!campaign) return;
  clearErrors();
  try {
    const response = await fetch(`/api/campaigns/${campaign.id}/recipients?state=failed&format=csv`, {
      headers: { Authorization: `Bearer ${app.token}` },
      cache: "no-store",
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new HubError(response.status, body);
    }
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = `campaign-${campaign.id}-failed.csv`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    showFailure(error);
  }
}

function listItem(campaign) {
  const item = document.createElement("li");
  item.className = "campaign-item";
  item.dataset.id = String(campaign.id);
  item.dataset.state = campaign.state;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "campaign-pick";
  button.textContent = `#${campaign.id} ${campaign.name}`;
  button.setAttribute("aria-pressed", String(view.selected?.id === campaign.id));
  button.addEventListener("click", () => select(campaign.id));
  const bar = document.createElement("progress");
  bar.max = Math.max(campaign.total, 1);
  bar.value = done(campaign);
  const line = document.createElement("span");
  line.className = "campaign-line muted small";
  line.textContent = `${t("campaigns.progress", { done: done(campaign), total: campaign.total })} · ${stateLabel(campaign)}`;
  item.append(button, bar, line);
  return item;
}

function drawDetail() {
  const campaign = view.selected;
  $("campaign-detail").hidden = !campaign;
  if (!campaign) return;
  const detail = $("campaign-detail");
  detail.dataset.state = campaign.state;
  setText("campaign-detail-name", `#${campaign.id} ${campaign.name}`);
  setText("campaign-detail-state", stateLabel(campaign));
  const counts = campaign.counts || {};
  const list = $("campaign-counts");
  list.replaceChildren();
  for (const state of ["pending", "sending", "sent", "failed", "skipped"]) {
    const term = document.createElement("dt");
    term.textContent = t(`campaigns.count_${state}`);
    const value = document.createElement("dd");
    value.dataset.count = state;
    value.textContent = String(counts[state] || 0);
    const pair = document.createElement("div");
    pair.append(term, value);
    list.append(pair);
  }
  const paused = Boolean(campaign.pause_reason);
  $("campaign-pause").hidden = !paused;
  if (paused) {
    setText("campaign-pause-detail", campaign.pause_detail || t(`campaigns.reason_${campaign.pause_reason}`));
    setText("campaign-pause-hint", campaign.hint || "");
  }
  const allowed = ACTIONS[campaign.state] || [];
  const busy = app.busy.has("campaign-action");
  for (const action of ["start", "pause", "resume", "cancel"]) {
    const button = $(buttonId(action));
    button.hidden = !allowed.includes(action);
    button.disabled = busy;
  }
  $("campaign-download").disabled = !(counts.failed > 0);
}

export function init() {
  initForm((created) => {
    view.selected = created;
    refresh();
  });
  for (const action of ["start", "pause", "resume", "cancel"]) {
    $(buttonId(action)).addEventListener("click", () => act(action));
  }
  $("campaign-download").addEventListener("click", downloadFailed);
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
    view.campaigns = [];
    view.selected = null;
  }
  const list = $("campaign-list");
  // Redrawn on every poll: a keyboard user's focus stays on the campaign it was on.
  const focused = list.contains(document.activeElement) ? document.activeElement.closest("li")?.dataset.id : null;
  list.replaceChildren(...view.campaigns.map(listItem));
  if (focused) list.querySelector(`li[data-id="${focused}"] button`)?.focus();
  $("campaign-empty").hidden = view.campaigns.length > 0;
  $("campaign-load-error").hidden = !view.failed;
  drawDetail();
  drawForm();
}
