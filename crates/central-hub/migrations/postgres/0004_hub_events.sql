-- The hub's own event log: everything a webhook (or a later consumer) may be told, written in the
-- same transaction as the change it reports, so an event is never lost between the change and its
-- delivery. `event_id` is stable and unique: a producer that writes the same event twice (a
-- replayed manager event) is refused by the key, and receivers deduplicate on it.
create table hub_event (
    hub_event_id bigserial primary key,
    event_id text not null unique,
    -- message.received, message.ack, session.status, campaign.progress, campaign.completed
    kind text not null,
    -- The CRM client the event belongs to; null: admins only.
    cliente_id bigint check (cliente_id is null or cliente_id > 0),
    -- The WhatsApp session it came through (`admin`: the one session for now).
    instance text not null default 'admin',
    -- JSON: the `data` of the webhook body.
    payload text not null,
    created_at text not null
);

create index hub_event_kind on hub_event (kind, hub_event_id);
