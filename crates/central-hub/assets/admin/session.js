// Signing in and out: the login form (administrators only), the token kept in sessionStorage until
// it expires or the hub refuses it, and switching between the login view and the dashboard (which
// starts and stops the live updates). Draws who is signed in.

import { api } from "./api.js";
import { clearErrors, describe, fillErrorBox } from "./banners.js";
import { startLive, stopLive } from "./live.js";
import { $, EXPIRES_KEY, TOKEN_KEY, USER_KEY, app, onSessionExpired, render, t } from "./state.js";

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

export function logout(message) {
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

function expired() {
  logout(t("error.session_expired"));
}

export function showLogin() {
  $("dashboard").hidden = true;
  $("login-view").hidden = false;
  $("logout").hidden = true;
  $("whoami").hidden = true;
  render();
  $("login-email").focus();
}

export function enterDashboard() {
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
    app.expiryTimer = setTimeout(expired, Math.max(0, Math.min(expiresAt - Date.now(), 2 ** 31 - 1)));
  }
  startLive();
  render();
}

/** Resumes a stored admin session, or shows the login form. */
export function resume() {
  if (app.token && app.user?.role === "admin") enterDashboard();
  else if (app.token) logout();
  else showLogin();
}

export function init() {
  onSessionExpired(expired);
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout());
}

/** Who is signed in, in the top bar. */
export function draw() {
  $("whoami").textContent = app.user ? t("signed_in_as", { email: app.user.email }) : "";
}
