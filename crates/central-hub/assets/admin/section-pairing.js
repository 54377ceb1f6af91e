// Dashboard part "Vincular con número de teléfono" and the WhatsApp build line: the pairing code (a
// credential like the QR, shown to admins only) next to the QR, the form asking for the number of the
// phone to link, and whether the bridge found in this WhatsApp Web build what it needs.

import { LIVE_STATES, runAction } from "./section-actions.js";
import { $, app, setText, t } from "./state.js";

function linkWithPhone(event) {
  event.preventDefault();
  const phone = $("pairing-phone").value.trim();
  if (!phone) return;
  runAction("connect", "/api/admin/whatsapp/connect", { pairing_phone: phone }, "done.connect");
}

export function init() {
  $("pairing-form").addEventListener("submit", linkWithPhone);
}

export function draw() {
  const status = app.status;
  const wa = status?.whatsapp;
  $("wa-build").hidden = !wa;
  if (wa) {
    const key = !wa.compatible ? "wa.incompatible" : wa.features_disabled.length ? "wa.disabled" : "wa.compatible";
    setText("wa-build", t(key, {
      build: wa.build, missing: wa.missing_required.join(", "), features: wa.features_disabled.join(", "),
    }));
  }
  const pairing = status?.state === "QR_REQUIRED" ? status.pairing_code : null;
  $("pairing-box").hidden = !pairing;
  if (pairing) {
    setText("pairing-code", pairing.code);
    $("pairing-box").dataset.expiresAt = String(pairing.expires_at);
    $("pairing-box").dataset.attempt = String(pairing.attempts);
  }
  const state = status?.state;
  const acting = app.busy.has("connect") || app.busy.has("disconnect") || app.busy.has("clear");
  $("pairing-submit").disabled = acting || (state !== undefined && LIVE_STATES.has(state) && state !== "QR_REQUIRED");
}
