-- Bumped by every password change and disable/enable; login tokens carry it (claim `cv`) and a
-- token whose version is no longer the account's is refused.
alter table app_user add column credential_version bigint not null default 1;
