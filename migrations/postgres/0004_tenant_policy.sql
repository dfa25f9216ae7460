-- A tenant's retention and sending policy, set by its admins. No row means the defaults:
-- shares live 14 days unless asked otherwise, at most 90, no upload limit below the store's,
-- any recipient domain.
CREATE TABLE tenant_policies (
    tenant_id                  UUID PRIMARY KEY NOT NULL REFERENCES tenants(id),
    default_days               BIGINT NOT NULL,
    max_days                   BIGINT NOT NULL CHECK (max_days BETWEEN 1 AND 90),
    max_upload_bytes           BIGINT,            -- NULL: only the store's own limit
    allowed_recipient_domains  TEXT,          -- JSON array of lowercase domains; NULL: any
    updated_at                 TIMESTAMPTZ NOT NULL,
    CHECK (default_days BETWEEN 1 AND max_days)
);
