-- One link per recipient, and tenants' sender domains (issue 16). The same tables as
-- migrations/postgres/0009_links_and_domains.sql.
CREATE TABLE share_links (
    id              BLOB PRIMARY KEY NOT NULL,
    share_id        BLOB NOT NULL REFERENCES shares(id),
    tenant_id       BLOB NOT NULL REFERENCES tenants(id),
    recipient       TEXT NOT NULL,
    token_selector  TEXT NOT NULL UNIQUE,
    token_hash      BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    revoked_at      TEXT,
    FOREIGN KEY (share_id, recipient) REFERENCES share_recipients (share_id, email)
);
CREATE INDEX share_links_by_share ON share_links (share_id);

ALTER TABLE relay_recipients ADD COLUMN links BLOB;

CREATE TABLE relay_domains (
    domain      TEXT PRIMARY KEY NOT NULL,
    tenant_id   BLOB NOT NULL REFERENCES tenants(id),
    created_at  TEXT NOT NULL
);
CREATE INDEX relay_domains_by_tenant ON relay_domains (tenant_id);

ALTER TABLE tenant_policies ADD COLUMN relay_hold_hours INTEGER;

ALTER TABLE relay_dkim_keys ADD COLUMN activated_at TEXT;
UPDATE relay_dkim_keys SET activated_at = created_at;
