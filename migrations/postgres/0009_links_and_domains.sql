-- One link per recipient (issue 16): a share's recipient gets a token of their own, so each
-- download names its recipient and each link is revoked alone. Minted by
-- POST /api/v1/shares/{id}/links and by the relay for each recipient's copy of a message.
-- Only on the share's recipients (the foreign key); only the token's hash is kept.
CREATE TABLE share_links (
    id              UUID PRIMARY KEY NOT NULL,
    share_id        UUID NOT NULL REFERENCES shares(id),
    tenant_id       UUID NOT NULL REFERENCES tenants(id),
    recipient       TEXT NOT NULL,
    token_selector  TEXT NOT NULL UNIQUE,
    token_hash      BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ,
    FOREIGN KEY (share_id, recipient) REFERENCES share_recipients (share_id, email)
);
CREATE INDEX share_links_by_share ON share_links (share_id);

-- The links a queued recipient's copy carries, sealed under the message's key (so they are
-- shredded with it): minted once, at the first attempt, and the same on every retry.
ALTER TABLE relay_recipients ADD COLUMN links BYTEA;

-- The domains a tenant's mail server sends from (envelope senders): the relay refuses MAIL
-- FROM any other, so a leaked relay password cannot send as someone else. A domain belongs to
-- one tenant.
CREATE TABLE relay_domains (
    domain      TEXT PRIMARY KEY NOT NULL,
    tenant_id   UUID NOT NULL REFERENCES tenants(id),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX relay_domains_by_tenant ON relay_domains (tenant_id);

-- How long the relay retries a tenant's unreachable recipients (hours; NULL: the deployment's).
ALTER TABLE tenant_policies ADD COLUMN relay_hold_hours BIGINT;

-- DKIM key rotation: a new key for a domain that already signs waits until it is activated
-- (its record published first); the newest activated key signs. Existing keys sign.
ALTER TABLE relay_dkim_keys ADD COLUMN activated_at TIMESTAMPTZ;
UPDATE relay_dkim_keys SET activated_at = created_at;
