// Dashboard section "Enviar un mensaje de prueba": sends one message through the client route
// (`POST /api/whatsapp/{clienteId}/send`), enabled only while the session can send.

import { api } from "./api.js";
import { clearErrors, showFailure } from "./banners.js";
import { $, app, render, t } from "./state.js";

async function sendTest(event) {
  event.preventDefault();
  const form = $("send-form");
  const result = $("send-result");
  result.hidden = true;
  if (!form.reportValidity()) return;
  const to = $("send-to").value.trim();
  const message = $("send-message").value;
  const cliente = $("send-cliente").value.trim();
  app.busy.add("send");
  clearErrors();
  render();
  try {
    const answer = await api("POST", `/api/whatsapp/${encodeURIComponent(cliente)}/send`, { to, message });
    result.textContent = t("send.sent", { to: answer.data.to, id: answer.data.message_id });
    result.hidden = false;
  } catch (error) {
    showFailure(error);
  } finally {
    app.busy.delete("send");
    render();
  }
}

export function init() {
  $("send-form").addEventListener("submit", sendTest);
}

export function draw() {
  const canSend = Boolean(app.status?.can_send_messages);
  const sending = app.busy.has("send");
  $("send-submit").disabled = !canSend || sending;
  $("send-submit").textContent = t(sending ? "send.busy" : "send.submit");
  $("send-not-ready").hidden = canSend;
  // A confirmation belongs to the connection it was sent over.
  if (!canSend) $("send-result").hidden = true;
}
