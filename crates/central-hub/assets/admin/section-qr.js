// Dashboard section "Escanea el código QR": shown while the session waits for a scan, with the QR
// image, its attempt number and a countdown to its expiry (redrawn four times a second).

import { $, app, setText, t } from "./state.js";

function renderCountdown() {
  const card = $("qr-card");
  const expiresAt = Number(card.dataset.expiresAt);
  if (card.hidden || !expiresAt) return;
  const seconds = Math.max(0, Math.ceil((expiresAt - Date.now()) / 1000));
  const countdown = $("qr-countdown");
  countdown.classList.toggle("expired", seconds === 0);
  countdown.textContent = seconds > 0 ? t("qr.expires_in", { seconds }) : t("qr.expired");
}

export function init() {
  app.countdownTimer = setInterval(renderCountdown, 250);
}

export function draw() {
  const status = app.status;
  const qr = status?.state === "QR_REQUIRED" ? status.qr : null;
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
