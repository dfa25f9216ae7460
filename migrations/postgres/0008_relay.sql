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

-- The relay's queue. A message is accepted (250) only once its row and its body — sealed in
-- the object store with the upload segment format under a key of its own, wrapped by the
-- tenant's key — are durable; shredding the key destroys it like a file.
CREATE TABLE relay_messages (
    id             UUID PRIMARY KEY NOT NULL,
    tenant_id      UUID NOT NULL REFERENCES tenants(id),
    message_id     TEXT NOT NULL,      -- the Message-ID header (one is added when missing)
    envelope_from  TEXT NOT NULL,
    size           BIGINT NOT NULL,
    wrapped_dek    BYTEA,                 -- NULL once every recipient is done: shredded
    received_at    TIMESTAMPTZ NOT NULL,
    hold_until     TIMESTAMPTZ NOT NULL         -- after this, undeliverable recipients get a DSN
);
CREATE INDEX relay_messages_by_tenant ON relay_messages (tenant_id, message_id);

-- One row per recipient: what is left to do, and the claim of the instance doing it.
CREATE TABLE relay_recipients (
    queue_id         UUID NOT NULL REFERENCES relay_messages(id),
    tenant_id        UUID NOT NULL REFERENCES tenants(id),
    message_id       TEXT NOT NULL,    -- copied from the message: one delivery per Message-ID
    recipient        TEXT NOT NULL,    --   and recipient, however often a client resubmits
    domain           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'delivered', 'bounced', 'expired')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    last_error       TEXT,
    method           TEXT,             -- how it was delivered: 'mta-sts' or 'webpki'
    claimed_until    TIMESTAMPTZ,
    claimed_by       TEXT,
    done_at          TIMESTAMPTZ,
    PRIMARY KEY (queue_id, recipient)
);
CREATE UNIQUE INDEX relay_recipients_once ON relay_recipients (tenant_id, message_id, recipient);
CREATE INDEX relay_recipients_due ON relay_recipients (status, next_attempt_at);

-- The deliveries of one message, for the tenant admin's view of its proof records.
CREATE INDEX audit_events_by_subject ON audit_events (tenant_id, subject, kind);

-- DKIM keys per tenant, domain and selector. The private key (PKCS#8) is sealed like a file
-- under a key of its own (AAD: key_id), wrapped by the tenant's key: never plaintext at rest.
CREATE TABLE relay_dkim_keys (
    tenant_id    UUID NOT NULL REFERENCES tenants(id),
    domain       TEXT NOT NULL,
    selector     TEXT NOT NULL,
    algorithm    TEXT NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
    key_id       UUID NOT NULL,
    wrapped_dek  BYTEA NOT NULL,
    sealed_key   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, domain, selector)
);
