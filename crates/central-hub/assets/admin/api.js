// Requests to the hub: JSON in and out, the token in the Authorization header, a timeout, and the
// two kinds of failure the page tells apart (the hub answered with an error body, or could not be
// reached). A 502/504 naming the session-manager marks it unreachable; a 401 ends the session.

import { app, readJson, sessionExpired } from "./state.js";

/** The hub's own upstream read timeout is 30 s; a request never waits longer than this. */
const REQUEST_TIMEOUT_MS = 35000;

const UNREACHABLE_CODES = new Set(["SESSION_MANAGER_UNREACHABLE", "SESSION_MANAGER_TIMEOUT"]);

/** An answer of the hub that is not a success: carries the error body (`code`, `hint`, ...). */
export class HubError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || `HTTP_${status}`;
    this.hint = body?.hint || "";
    this.requestId = body?.request_id || "";
    this.detail = body?.detail || {};
  }
}

/** A request to the hub that could not be made (network down, hub stopped, timeout). */
export class NetworkError extends Error {}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (app.token) headers.Authorization = `Bearer ${app.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    throw new NetworkError(error?.name === "TimeoutError" ? `${REQUEST_TIMEOUT_MS / 1000} s` : error.message);
  }
  const text = await response.text().catch(() => "");
  const json = readJson(text);
  if (!response.ok) {
    const failure = new HubError(response.status, json);
    noteManagerReachability(failure);
    if (response.status === 401 && app.token) sessionExpired();
    throw failure;
  }
  app.hubError = null;
  return json;
}

/** Keeps the unreachable banner in step with what the hub answers. */
function noteManagerReachability(failure) {
  if (UNREACHABLE_CODES.has(failure.code)) {
    app.managerDown = true;
    app.managerUrl = failure.detail?.url || app.managerUrl;
  }
}
