-- The relay (issue 16). The same tables as migrations/sqlite/0008_relay.sql.
-- Credentials a tenant's mail server uses to relay through Ferry (SMTP AUTH). Like API keys:
-- a selector in clear (the username's tail) and SHA-256 of the random password.
CREATE TABLE relay_accounts (
    id           UUID PRIMARY KEY NOT NULL,
    tenant_id    UUID NOT NULL REFERENCES tenants(id),
    selector     TEXT NOT NULL UNIQUE,
    secret_hash  BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX relay_accounts_by_tenant ON relay_accounts (tenant_id);

-- MTA-STS policies by recipient domain (RFC 8461 §5.1: cached by id across restarts). Not
-- tenant data: a domain's published policy is the same for every sender.
CREATE TABLE relay_mta_sts_policies (
    domain      TEXT PRIMARY KEY NOT NULL,
    policy_id   TEXT NOT NULL,
    policy      TEXT NOT NULL,
    fetched_at  TIMESTAMPTZ NOT NULL
);
