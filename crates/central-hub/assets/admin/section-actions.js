// Dashboard section "Acciones": connect, disconnect, and clear a damaged session (after a
// confirmation dialog, then a warning while a backup of the cleared login exists).

import { api } from "./api.js";
import { clearErrors, hideNotice, showFailure, showNotice } from "./banners.js";
import { isLive, pollStatus } from "./live.js";
import { $, app, render, t } from "./state.js";

export const LIVE_STATES = new Set(["CONNECTING", "QR_REQUIRED", "AUTHENTICATED", "READY"]);

export async function runAction(name, path, body, doneKey) {
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
    if (!isLive()) pollStatus();
  } catch (error) {
    showFailure(error);
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

export function init() {
  $("connect").addEventListener("click", () =>
    runAction("connect", "/api/admin/whatsapp/connect", undefined, "done.connect"));
  $("disconnect").addEventListener("click", () =>
    runAction("disconnect", "/api/admin/whatsapp/disconnect", undefined, "done.disconnect"));
  $("clear-session").addEventListener("click", confirmClear);
  $("confirm-clear").addEventListener("close", onConfirmClearClosed);
}

export function draw() {
  const state = app.status?.state;
  const acting = app.busy.has("connect") || app.busy.has("disconnect") || app.busy.has("clear");
  $("connect").disabled = acting || (state !== undefined && LIVE_STATES.has(state));
  $("disconnect").disabled = acting || !LIVE_STATES.has(state);
  $("clear-session").disabled = acting;
  for (const id of ["connect", "disconnect", "clear-session"]) {
    $(id).setAttribute("aria-busy", String(acting));
  }
}
