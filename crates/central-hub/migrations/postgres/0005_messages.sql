-- Messages: what the session sent (`out`: API sends and campaign sends, with the WhatsApp id the
-- manager answered) and received (`in`: replies and other incoming messages, from the manager's
-- inbound stream). An incoming message belongs to the `cliente_id` (and campaign) of the latest
-- outgoing message to its phone; without one it is for admins only (cliente_id null).
create table message (
    id bigserial primary key,
    direction text not null check (direction in ('in', 'out')),
    -- The WhatsApp session (`admin`: the one session for now).
    instance text not null default 'admin',
    -- WhatsApp's serialized message id: the key an event is deduplicated on.
    whatsapp_id text not null,
    -- Digits only; null on an ack that arrived before its send was stored and named no recipient.
    peer_phone text,
    cliente_id bigint check (cliente_id is null or cliente_id > 0),
    campaign_id bigint,
    -- WhatsApp's type (`chat` for text, `image`, ...).
    message_type text not null default 'chat',
    body text,
    -- Unix milliseconds, as WhatsApp stamped it (null: an outgoing message known only from its ack).
    wa_timestamp_ms bigint,
    stored_at text not null,
    stored_at_ms bigint not null,
    -- The highest ack seen: error, pending, sent, delivered, read, played (rank -1..4).
    ack text,
    ack_rank bigint,
    ack_at text,
    -- 1 while the row was made by an ack whose send is not stored yet (its events wait for it).
    placeholder bigint not null default 0,
    -- The ack levels seen while a placeholder, comma separated: reported when the send lands.
    held_acks text
);

create unique index message_whatsapp_id on message (instance, whatsapp_id);
-- Attribution: the newest outgoing message to a phone.
create index message_attribution on message (instance, peer_phone, direction, id);
-- Listing: newest first by direction.
create index message_listing on message (direction, id);
-- A client's messages, newest first.
create index message_cliente on message (cliente_id, id);

-- Acks and replies find their campaign recipient by the WhatsApp id of its send.
create index campaign_recipient_whatsapp on campaign_recipient (whatsapp_message_id);

-- Where the hub is in the manager's inbound stream: the last sequence applied, per session.
create table inbound_position (
    instance text primary key,
    last_seq bigint not null,
    updated_at text not null
);
