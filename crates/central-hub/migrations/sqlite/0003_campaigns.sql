-- Campaigns: a template sent to many recipients through the session, at the session's pace.
-- The recipients table is the dispatcher's queue: a row is claimed with a lease (owner + expiry)
-- and its result written by the lease's owner only. Times the dispatcher compares are Unix
-- milliseconds (`*_ms`); times shown to people are RFC 3339 UTC text like the rest of the schema.
create table campaign (
    campaign_id integer primary key autoincrement,
    name text not null,
    cliente_id bigint not null check (cliente_id > 0),
    -- The WhatsApp session the campaign sends through (`admin`: the one session for now).
    instance text not null default 'admin',
    template text not null,
    state text not null check (state in ('draft', 'running', 'paused', 'completed', 'cancelled')),
    -- Set while paused: user, session_not_ready, outside_window, daily_cap, consecutive_failures.
    pause_reason text,
    pause_detail text,
    -- The pace the campaign asks for; the operator's limits (CAMPAIGN_*) still apply.
    min_delay_ms bigint not null,
    max_delay_ms bigint not null,
    max_per_hour bigint not null,
    max_per_day bigint not null,
    time_zone text not null,
    -- Minutes after local midnight: [window_start_min, window_end_min).
    window_start_min bigint not null,
    window_end_min bigint not null,
    consecutive_failures bigint not null default 0,
    last_error text,
    total bigint not null,
    created_by text not null,
    created_at text not null,
    updated_at text not null,
    started_at text,
    finished_at text
);

create index campaign_state on campaign (state);
create index campaign_cliente on campaign (cliente_id);

create table campaign_recipient (
    recipient_id integer primary key autoincrement,
    campaign_id bigint not null references campaign (campaign_id),
    -- The line of the CSV (or the 1-based index in the JSON list) it came from.
    line bigint not null,
    phone text not null,
    vars text not null,
    rendered text not null,
    state text not null check (state in ('pending', 'sending', 'sent', 'failed', 'skipped')),
    attempts bigint not null default 0,
    error_code text,
    error_detail text,
    whatsapp_message_id text,
    sent_via text,
    sent_at text,
    sent_at_ms bigint,
    delivered_at text,
    read_at text,
    replied_at text,
    lease_owner text,
    lease_until_ms bigint not null default 0,
    next_attempt_ms bigint not null default 0
);

-- The claim: the oldest sendable row of a running campaign.
create index campaign_recipient_claim on campaign_recipient (campaign_id, state, recipient_id);
-- The pacer: sends of the last day.
create index campaign_recipient_sent on campaign_recipient (sent_at_ms);

create table opt_out (
    opt_out_id integer primary key autoincrement,
    phone text not null,
    -- null: no campaign of any client reaches the number.
    cliente_id bigint,
    reason text not null,
    evidence text,
    created_by text not null,
    created_at text not null
);

create unique index opt_out_phone on opt_out (phone, coalesce(cliente_id, 0));
