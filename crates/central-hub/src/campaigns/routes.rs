//! Campaign routes: create (JSON recipients or a CSV), list, detail, start/pause/resume/cancel,
//! and the live event stream. Admins act on every campaign; a `client` user only on its own
//! `cliente_id`'s (403 otherwise, like the hub's client routes). Every state change is audited.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{Value, json};
use shared_contracts::{ClienteId, ErrorBody, ErrorCode, Role};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::events::Batch;
use super::intake::{self, IntakeError, MAX_LISTED, RecipientInput, Source};
use super::pacer::{Pace, SendWindow, parse_clock};
use super::store::{Campaign, NewCampaign};
use super::template::Template;
use super::{CREATE_BODY_LIMIT_BYTES, CampaignState, DEFAULT_INSTANCE, PauseReason, views};
use crate::auth::AuthUser;
use crate::db::AuditEntry;
use crate::error::{ApiError, AppJson};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    let (schemas, paths, campaigns) = routes!(list, create);
    OpenApiRouter::new()
        .routes((schemas, paths, campaigns.layer(DefaultBodyLimit::max(CREATE_BODY_LIMIT_BYTES))))
        .routes(routes!(events))
        .routes(routes!(detail))
        .routes(routes!(action))
        .routes(routes!(super::recipients::list))
        .merge(super::optouts::router())
}

/// What `POST /api/campaigns/{id}/{action}` may ask (documentation of the path parameter).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum CampaignAction {
    Start,
    Pause,
    Resume,
    Cancel,
}

/// The cliente_id a client user works for (refusing another one it asked for).
pub(crate) fn client_scope(user: &AuthUser, asked: Option<i64>) -> Result<i64, ApiError> {
    let own = user.0.cliente_id.and_then(|id| i64::try_from(id.get()).ok()).unwrap_or(0);
    match asked {
        Some(asked) if asked != own => Err(ApiError::Forbidden {
            message: format!("user {} may not act for clienteId {asked}", user.0.email),
            hint: "Use your own clienteId, or ask an admin",
        }),
        _ => Ok(own),
    }
}

/// Records a user's action in the audit log (a failed write is logged, not answered).
pub(crate) async fn audit(
    state: &AppState,
    user: &AuthUser,
    action: &str,
    target: &str,
    detail: Option<String>,
) {
    let entry = AuditEntry {
        actor_user_id: Some(user.0.id),
        actor_email: user.0.email.to_string(),
        action: action.to_owned(),
        target: Some(target.to_owned()),
        result: "ok".to_owned(),
        detail,
    };
    if let Err(e) = state.store.record_audit(entry).await {
        tracing::error!(error.message = %e, action, "could not write the audit log");
    }
}

fn invalid(message: String, detail: Value) -> ApiError {
    ApiError::Coded {
        code: ErrorCode::CampaignInvalid,
        message,
        detail,
        hint:
            "Fix what detail names (every offending line is in detail.errors) and send the campaign again: \
               nothing was stored"
                .to_owned(),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::Coded {
        code: ErrorCode::NotFound,
        message: format!("there is no campaign {id}"),
        detail: json!({ "campaign_id": id }),
        hint: "GET /api/campaigns lists the campaigns you may see".to_owned(),
    }
}

/// The campaign `raw`, if the caller may act on it.
pub(crate) async fn load(state: &AppState, user: &AuthUser, raw: &str) -> Result<Campaign, ApiError> {
    let id: i64 = raw.parse().map_err(|_| not_found(raw))?;
    let campaign = state.store.find_campaign(id).await?.ok_or_else(|| not_found(raw))?;
    let cliente = ClienteId::parse(&campaign.cliente_id.to_string()).map_err(ApiError::Internal)?;
    user.ensure_may_act_for(cliente)?;
    Ok(campaign)
}

/// The campaigns the caller may see (a client: its own `cliente_id`'s).
#[utoipa::path(get, path = "/api/campaigns", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "`{\"campaigns\": [summary...]}` (docs/contracts.md)", body = Object)))]
async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    let scope = match user.0.role {
        Role::Admin => None,
        Role::Client => Some(client_scope(&user, None)?),
    };
    let campaigns = state.store.list_campaigns(scope).await?;
    let fastest = state.campaigns.settings.fastest;
    Ok(Json(json!({ "campaigns": views::list(&state.store, &campaigns, &fastest).await? })))
}

/// One campaign: its settings, counts and state.
#[utoipa::path(get, path = "/api/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The campaign (docs/contracts.md)", body = Object),
        (status = 404, description = "NOT_FOUND: no such campaign", body = ErrorBody),
    ))]
async fn detail(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let campaign = load(&state, &user, &raw).await?;
    Ok(Json(views::detail(&state.store, &campaign, &state.campaigns.settings.fastest).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PaceBody {
    min_delay_ms: Option<u64>,
    max_delay_ms: Option<u64>,
    max_per_hour: Option<u32>,
    max_per_day: Option<u32>,
}

/// Local clock times `HH:MM` in the campaign's time zone.
#[derive(Debug, Deserialize, ToSchema)]
struct WindowBody {
    start: String,
    end: String,
}

/// A campaign to create: the recipients either as `recipients` or as `csv`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "March promo", "cliente_id": 51, "template": "Hola {{nombre}}",
    "recipients": [{"phone": "5491123456789", "vars": {"nombre": "Ana"}}]
}))]
struct CreateBody {
    name: String,
    cliente_id: i64,
    template: String,
    #[serde(default)]
    recipients: Option<Vec<RecipientInput>>,
    #[serde(default)]
    csv: Option<String>,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    window: Option<WindowBody>,
    #[serde(default)]
    pace: Option<PaceBody>,
}

/// Everything but the recipients, validated.
fn settings(state: &AppState, body: &CreateBody) -> Result<(Template, Pace, SendWindow, String), ApiError> {
    let field =
        |field: &str, reason: String| invalid(format!("{field}: {reason}"), json!({ "field": field }));
    if body.name.trim().is_empty() || body.name.chars().count() > 200 {
        return Err(field("name", "give the campaign a name of 1 to 200 characters".into()));
    }
    if body.cliente_id <= 0 {
        return Err(field("cliente_id", format!("{} is not a positive integer", body.cliente_id)));
    }
    let instance = body.instance.clone().unwrap_or_else(|| DEFAULT_INSTANCE.to_owned());
    if instance != DEFAULT_INSTANCE {
        return Err(field("instance", format!("{instance:?}: the only session is {DEFAULT_INSTANCE:?}")));
    }
    let template = Template::parse(&body.template).map_err(|reason| field("template", reason))?;
    let fastest = state.campaigns.settings.fastest;
    let asked = body.pace.as_ref();
    let pace = Pace {
        min_delay_ms: asked.and_then(|p| p.min_delay_ms).unwrap_or(fastest.min_delay_ms),
        max_delay_ms: asked.and_then(|p| p.max_delay_ms).unwrap_or(fastest.max_delay_ms),
        max_per_hour: asked.and_then(|p| p.max_per_hour).unwrap_or(fastest.max_per_hour),
        max_per_day: asked.and_then(|p| p.max_per_day).unwrap_or(fastest.max_per_day),
    };
    pace.check_against(&fastest).map_err(|reason| field("pace", reason))?;
    let (start, end) = match &body.window {
        Some(w) => (
            parse_clock(&w.start).map_err(|r| field("window.start", r))?,
            parse_clock(&w.end).map_err(|r| field("window.end", r))?,
        ),
        None => (9 * 60, 20 * 60),
    };
    let zone = body.time_zone.clone().unwrap_or_else(|| state.campaigns.settings.default_time_zone.clone());
    let window = SendWindow::new(&zone, start, end).map_err(|reason| field("time_zone/window", reason))?;
    Ok((template, pace, window, zone))
}

/// Creates a campaign (a draft) from JSON recipients or a CSV; nothing is stored when a line is bad.
#[utoipa::path(post, path = "/api/campaigns", tag = "campaigns", security(("bearer" = [])),
    request_body = CreateBody,
    responses(
        (status = 201, description = "Created: the campaign with a `report` (docs/contracts.md)", body = Object),
        (status = 400, description = "VALIDATION_ERROR (not JSON) or CAMPAIGN_INVALID (every bad line in detail.errors)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<CreateBody>,
) -> Result<Response, ApiError> {
    let cliente = ClienteId::parse(&body.cliente_id.to_string())
        .map_err(|reason| invalid(format!("cliente_id: {reason}"), json!({ "field": "cliente_id" })))?;
    user.ensure_may_act_for(cliente)?;
    let (template, pace, window, time_zone) = settings(&state, &body)?;
    let opt_outs = state.store.opted_out_numbers(body.cliente_id).await?;
    let CreateBody { name, cliente_id, template: template_text, recipients, csv, .. } = body;
    // Parsing and rendering 100,000 rows is CPU work: off the async threads.
    let validated = tokio::task::spawn_blocking(move || {
        let source = match (&recipients, &csv) {
            (Some(list), None) => Source::Json(list),
            (None, Some(text)) => Source::Csv(text),
            _ => {
                return Err(IntakeError::Request {
                    field: "recipients",
                    reason: "give the recipients either as `recipients` (a JSON list) or as `csv`, not both"
                        .to_owned(),
                });
            }
        };
        intake::validate(&template, source, &opt_outs)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the validation task failed: {e}")))?;
    let intake = match validated {
        Ok(intake) => intake,
        Err(IntakeError::Request { field, reason }) => {
            return Err(invalid(format!("{field}: {reason}"), json!({ "field": field })));
        }
        Err(IntakeError::Lines(errors)) => {
            let first = &errors[0];
            let message = format!(
                "{} recipient line(s) are invalid, nothing was stored; first: line {}: {}",
                errors.len(),
                first.line,
                first.reason
            );
            let shown = &errors[..errors.len().min(MAX_LISTED)];
            let detail = json!({ "error_count": errors.len(), "shown": shown.len(), "errors": shown });
            return Err(invalid(message, detail));
        }
    };
    let duplicates = intake.duplicates.len();
    let opted_out = intake.opted_out;
    let stored = intake.recipients.len();
    let new = NewCampaign {
        name: name.trim().to_owned(),
        cliente_id,
        instance: DEFAULT_INSTANCE.to_owned(),
        template: template_text,
        pace,
        time_zone,
        window_start_min: window.start_min,
        window_end_min: window.end_min,
        created_by: user.0.email.to_string(),
    };
    let campaign = state.store.create_campaign(new, intake.recipients).await?;
    let detail = format!("{stored} recipients, {opted_out} opted out, {duplicates} duplicates merged");
    audit(&state, &user, "campaign.create", &format!("campaign:{}", campaign.id), Some(detail)).await;
    state.campaigns.events.changed(campaign.id);
    let mut answer = views::detail(&state.store, &campaign, &state.campaigns.settings.fastest).await?;
    answer["report"] = json!({
        "recipients": stored,
        "skipped_opted_out": opted_out,
        "duplicates_merged": duplicates,
        "duplicates": &intake.duplicates[..duplicates.min(MAX_LISTED)],
    });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Starts, pauses, resumes or cancels a campaign.
#[utoipa::path(post, path = "/api/campaigns/{id}/{action}", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, description = "The campaign's id"), ("action" = inline(CampaignAction), Path)),
    responses(
        (status = 200, description = "The campaign in its new state (docs/contracts.md)", body = Object),
        (status = 404, description = "NOT_FOUND: no such campaign or action", body = ErrorBody),
        (status = 409, description = "CAMPAIGN_STATE_CONFLICT: its state does not allow the action", body = ErrorBody),
    ))]
async fn action(
    State(state): State<AppState>,
    user: AuthUser,
    Path((raw, action)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    use CampaignState::{Cancelled, Draft, Paused, Running};
    let (from, to, pause, allowed): (&[CampaignState], _, _, &str) = match action.as_str() {
        "start" => (&[Draft], Running, None, "a draft"),
        "pause" => {
            (&[Running, Paused], Paused, Some((PauseReason::User, None)), "a running or paused campaign")
        }
        "resume" => (&[Paused], Running, None, "a paused campaign"),
        "cancel" => (&[Draft, Running, Paused], Cancelled, None, "a draft, running or paused campaign"),
        _ => {
            return Err(ApiError::NotFound {
                method: "POST".into(),
                path: format!("/api/campaigns/{raw}/{action}"),
            });
        }
    };
    let campaign = load(&state, &user, &raw).await?;
    let changed = state.store.transition_campaign(campaign.id, from, to, pause).await?;
    let Some(changed) = changed else {
        return Err(ApiError::Coded {
            code: ErrorCode::CampaignStateConflict,
            message: format!(
                "campaign {} is {}: only {allowed} can be told to {action}",
                campaign.id,
                campaign.state.as_str()
            ),
            detail: json!({ "campaign_id": campaign.id, "state": campaign.state, "action": action }),
            hint: "GET /api/campaigns/{id} shows its state; a completed or cancelled campaign is final"
                .to_owned(),
        });
    };
    let mut note = format!("{} -> {}", campaign.state.as_str(), changed.state.as_str());
    if to == Cancelled {
        let skipped = state.store.skip_pending(campaign.id).await?;
        note.push_str(&format!(", {skipped} pending recipients skipped"));
    }
    audit(&state, &user, &format!("campaign.{action}"), &format!("campaign:{}", campaign.id), Some(note))
        .await;
    state.campaigns.events.changed(campaign.id);
    state.campaigns.nudge.notify_one();
    Ok(Json(views::detail(&state.store, &changed, &state.campaigns.settings.fastest).await?))
}

/// Server-Sent Events for the page: `campaigns` (every campaign the caller may see) on subscribe
/// and after a lag, then `campaign` (one summary) for each campaign that changed.
#[utoipa::path(get, path = "/api/campaigns/events", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "Server-Sent Events: `campaigns`, then `campaign` per change", content_type = "text/event-stream", body = String)))]
async fn events(
    State(state): State<AppState>,
    user: AuthUser,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = state.campaigns.events.subscribe();
    let shutdown = state.shutdown.clone();
    let initial = Some(Batch::All);
    let stream = stream::unfold((changes, initial), move |(mut changes, pending)| {
        let (state, user, shutdown) = (state.clone(), user.clone(), shutdown.clone());
        async move {
            let batch = match pending {
                Some(batch) => batch,
                None => tokio::select! {
                    () = shutdown.cancelled() => return None,
                    batch = changes.next_batch() => batch,
                },
            };
            let events = match batch {
                Batch::Closed => return None,
                Batch::All => match list(State(state.clone()), user.clone()).await {
                    Ok(Json(body)) => vec![Event::default().event("campaigns").json_data(body)],
                    Err(e) => {
                        vec![Event::default().event("error").json_data(json!({ "error": e.to_string() }))]
                    }
                },
                Batch::Ids(ids) => {
                    let mut out = Vec::new();
                    for id in ids {
                        if let Ok(Json(body)) =
                            detail(State(state.clone()), user.clone(), Path(id.to_string())).await
                        {
                            out.push(Event::default().event("campaign").json_data(body));
                        }
                    }
                    out
                }
            };
            let events: Vec<Result<Event, Infallible>> =
                events.into_iter().filter_map(Result::ok).map(Ok).collect();
            Some((stream::iter(events), (changes, None)))
        }
    });
    use futures_util::StreamExt;
    Sse::new(stream.flatten()).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
