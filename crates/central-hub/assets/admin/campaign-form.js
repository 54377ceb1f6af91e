// The "Campañas" create form: name, cliente_id, the template with the variables it uses and the
// first row rendered, a CSV file read in the browser with its first rows shown, and the hub's
// validation errors by line (400 CAMPAIGN_INVALID: `detail.errors[]` {line, phone, reason}).

import { HubError, api } from "./api.js";
import { clearErrors, showFailure, showNotice } from "./banners.js";
import { $, app, render, t } from "./state.js";

const PREVIEW_ROWS = 5;

/** The CSV text chosen in the file input (null until one is read). */
let csvText = null;

/** `{{name}}` placeholders of a template, trimmed and lower case, each once, in order. */
export function variablesOf(template) {
  const found = [];
  for (const match of template.matchAll(/\{\{([^{}]*)\}\}/g)) {
    const name = match[1].trim().toLowerCase();
    if (name && !found.includes(name)) found.push(name);
  }
  return found;
}

/** The first `limit` records of a CSV (`,` or `;`, the header line's; RFC 4180 quoting). */
export function parseCsv(text, limit) {
  const firstLine = text.split(/\r?\n/, 1)[0] || "";
  const delimiter = firstLine.includes(";") && !firstLine.includes(",") ? ";" : ",";
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length && rows.length < limit; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 1; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === delimiter) { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(field);
      if (row.some((value) => value !== "")) rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if (rows.length < limit && (field !== "" || row.length)) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** The template with the first CSV row's values (null when there is no row yet). */
function renderFirst(template, rows) {
  if (rows.length < 2) return null;
  const header = rows[0].map((name) => name.trim().toLowerCase());
  const values = rows[1];
  return template.replace(/\{\{([^{}]*)\}\}/g, (whole, name) => {
    const index = header.indexOf(name.trim().toLowerCase());
    return index >= 0 ? (values[index] ?? "").trim() : whole;
  });
}

function cell(tag, text) {
  const element = document.createElement(tag);
  element.textContent = text;
  return element;
}

function drawPreview() {
  const template = $("campaign-template").value;
  const vars = variablesOf(template);
  $("campaign-vars").textContent = vars.length
    ? t("campaigns.vars_found", { vars: vars.map((v) => `{{${v}}}`).join(" ") })
    : t("campaigns.vars_none");
  const rows = csvText === null ? [] : parseCsv(csvText, PREVIEW_ROWS + 1);
  const table = $("campaign-csv-preview");
  table.replaceChildren();
  table.hidden = rows.length === 0;
  rows.forEach((values, index) => {
    const tr = document.createElement("tr");
    for (const value of values) tr.append(cell(index === 0 ? "th" : "td", value));
    table.append(tr);
  });
  const rendered = renderFirst(template, rows);
  $("campaign-render").hidden = rendered === null;
  $("campaign-render-text").textContent = rendered ?? "";
}

function showLineErrors(error) {
  const box = $("campaign-errors");
  const list = $("campaign-errors-list");
  list.replaceChildren();
  const errors = Array.isArray(error.detail?.errors) ? error.detail.errors : [];
  const count = error.detail?.error_count ?? errors.length;
  $("campaign-errors-title").textContent = t("campaigns.invalid", { count });
  for (const line of errors) {
    list.append(cell("li", t("campaigns.line_error", { line: line.line, phone: line.phone || "-", reason: line.reason })));
  }
  box.hidden = false;
}

async function readFile() {
  const file = $("campaign-csv").files[0];
  csvText = file ? await file.text() : null;
  drawPreview();
}

async function create(event, onCreated) {
  event.preventDefault();
  const form = $("campaign-form");
  $("campaign-errors").hidden = true;
  if (!form.reportValidity()) return;
  if (csvText === null) await readFile();
  app.busy.add("campaign-create");
  clearErrors();
  render();
  try {
    const created = await api("POST", "/api/campaigns", {
      name: $("campaign-name").value.trim(),
      cliente_id: Number($("campaign-cliente").value),
      template: $("campaign-template").value,
      csv: csvText ?? "",
      time_zone: $("campaign-time-zone").value.trim(),
      window: { start: $("campaign-window-start").value.trim(), end: $("campaign-window-end").value.trim() },
    });
    showNotice(t("campaigns.created", { name: created.name, count: created.report?.recipients ?? created.total }));
    form.reset();
    csvText = null;
    fillTimeZone();
    drawPreview();
    onCreated(created);
  } catch (error) {
    if (error instanceof HubError && error.code === "CAMPAIGN_INVALID") showLineErrors(error);
    else showFailure(error);
  } finally {
    app.busy.delete("campaign-create");
    render();
  }
}

/** The browser's own time zone as the window's, until the admin writes another. */
function fillTimeZone() {
  $("campaign-time-zone").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** Wires the form; `onCreated(campaign)` runs after the hub stored one. */
export function initForm(onCreated) {
  $("campaign-form").addEventListener("submit", (event) => create(event, onCreated));
  $("campaign-template").addEventListener("input", drawPreview);
  $("campaign-csv").addEventListener("change", readFile);
  fillTimeZone();
}

export function drawForm() {
  const busy = app.busy.has("campaign-create");
  $("campaign-submit").disabled = busy;
  $("campaign-submit").textContent = t(busy ? "campaigns.creating" : "campaigns.create");
  drawPreview();
}
