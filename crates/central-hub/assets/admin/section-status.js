// Dashboard section "Estado": the indicator (the design's four visual states), since when, what to
// do now, and the session's last error.

import { $, app, setText, t } from "./state.js";

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

export function draw() {
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
}
