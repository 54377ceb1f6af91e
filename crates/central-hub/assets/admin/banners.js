// Banners: failures shown to the admin (the hub's sentence, what to do, the error code and the
// request id), the short-lived success notice, and the two connection banners (the session-manager
// unreachable from the hub; the hub unreachable from the page).

import { HubError, NetworkError } from "./api.js";
import { $, app, setText, t } from "./state.js";

const MAX_ERROR_BANNERS = 3;
/** How long a success notice stays (the indicator keeps showing the state itself). */
const NOTICE_MS = 6000;

/** What a failure looks like to the admin: sentence, hint, code, request id. */
export function describe(error) {
  if (error instanceof HubError) {
    return { message: error.message, hint: error.hint, code: error.code, requestId: error.requestId };
  }
  if (error instanceof NetworkError) {
    return { message: t("error.network", { cause: error.message }), hint: t("error.network_hint") };
  }
  return { message: String(error?.message || error) };
}

export function fillErrorBox(box, { message, hint, code, requestId }) {
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

export function showError(failure) {
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

/** Shows a failure unless it is the 401 that already sent the admin back to the login form. */
export function showFailure(error) {
  if (!(error instanceof HubError && error.status === 401)) showError(describe(error));
}

export function clearErrors() {
  $("errors").replaceChildren();
}

let noticeTimer = null;

export function showNotice(text) {
  const notice = $("notice");
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(hideNotice, NOTICE_MS);
}

export function hideNotice() {
  $("notice").hidden = true;
}

/** The connection banners: the session-manager unreachable, the hub unreachable. */
export function draw() {
  $("banner-unreachable").hidden = !(app.token && app.managerDown);
  if (app.managerDown) {
    setText("banner-unreachable-body", t("banner.unreachable.body", { url: app.managerUrl ? ` (${app.managerUrl})` : "" }));
    setText("banner-unreachable-hint", t("banner.unreachable.hint"));
  }
  $("banner-hub").hidden = !(app.token && app.hubError);
  if (app.hubError) setText("banner-hub-title", t("error.network", { cause: app.hubError }));
}
