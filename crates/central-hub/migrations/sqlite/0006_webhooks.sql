-- Webhooks: the CRM's endpoints, the outbox of their deliveries and the fan-out's position in
-- the event log (hub_event). See docs/contracts.md ("Webhooks").
create table webhook (
    webhook_id integer primary key autoincrement,
    url text not null,
    -- The kinds wanted, comma-separated (message.received,message.ack,...).
    events text not null,
    -- The HMAC-SHA256 key of the signatures; shown once, at creation.
    secret text not null,
    -- The owner: a client's cliente_id (only its own events), null: an admin's (every event).
    cliente_id bigint check (cliente_id is null or cliente_id > 0),
    created_by text not null,
    created_at text not null,
    disabled_at text,
    -- The last event of the log when it was created: older events are not sent to it.
    from_seq bigint not null
);

-- The outbox: one row per (webhook, event), delivered at least once.
create table webhook_delivery (
    webhook_delivery_id integer primary key autoincrement,
    webhook_id bigint not null references webhook (webhook_id),
    hub_event_id bigint not null references hub_event (hub_event_id),
    event_id text not null,
    state text not null check (state in ('pending', 'delivered', 'dead')),
    attempts bigint not null default 0,
    -- Unix ms: not tried again before.
    next_attempt_ms bigint not null,
    last_status bigint,
    last_error text,
    -- A worker holds a claimed delivery until lease_until_ms; an expired lease is taken over.
    lease_owner text,
    lease_until_ms bigint,
    created_ms bigint not null,
    delivered_ms bigint,
    updated_ms bigint not null,
    unique (webhook_id, hub_event_id)
);

create index webhook_delivery_due on webhook_delivery (state, next_attempt_ms);
create index webhook_delivery_lease on webhook_delivery (lease_owner);

-- How far the fan-out has read the event log (one row).
create table webhook_fanout (
    fanout_id integer primary key check (fanout_id = 1),
    position bigint not null
);

insert into webhook_fanout (fanout_id, position) values (1, 0);
