-- Users of the hub and the audit log of admin actions.
-- Timestamps are RFC 3339 UTC text in both backends, so one set of queries serves both through sqlx::Any.
create table app_user (
    app_user_id bigserial primary key,
    email text not null unique,
    password_hash text not null,
    role text not null check (role in ('admin', 'client')),
    cliente_id bigint check (cliente_id is null or cliente_id > 0),
    disabled_at text,
    created_at text not null,
    updated_at text not null,
    check (role = 'admin' or cliente_id is not null)
);

create table audit_log (
    audit_log_id bigserial primary key,
    at text not null,
    actor_user_id bigint,
    actor_email text not null,
    action text not null,
    target text,
    result text not null,
    detail text,
    request_id text
);

create index audit_log_at on audit_log (at);
