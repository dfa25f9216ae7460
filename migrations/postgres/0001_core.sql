-- Core schema: tenants and their API keys, uploads (which become files), wrapped data keys,
-- shares with their files and recipients. The same tables, columns, constraints and indexes as
-- migrations/sqlite/0001_core.sql, in native types: ids UUID, times TIMESTAMPTZ, bytes BYTEA,
-- and every integer BIGINT (SQLite's INTEGER is 64-bit; the code reads them all as i64).

CREATE TABLE tenants (
    id          UUID PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL
);

-- API keys are shown once; only the SHA-256 of their 256-bit secret is kept. The selector is a
-- separate random prefix so lookups never compare secrets with an index.
CREATE TABLE api_keys (
    id           UUID PRIMARY KEY NOT NULL,
    tenant_id    UUID NOT NULL REFERENCES tenants(id),
    role         TEXT NOT NULL CHECK (role IN ('admin', 'sender')),
    selector     TEXT NOT NULL UNIQUE,
    secret_hash  BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);

-- One row per tus upload; once its last byte is stored it is a file (state 'complete').
-- upload_offset counts plaintext bytes durably stored: full segments in the object plus the
-- sealed partial segment kept here in sealed_tail.
CREATE TABLE uploads (
    id              UUID PRIMARY KEY NOT NULL,
    tenant_id       UUID NOT NULL REFERENCES tenants(id),
    owner_key_id    UUID NOT NULL REFERENCES api_keys(id),
    length          BIGINT,                  -- NULL while the length is deferred
    upload_offset   BIGINT NOT NULL DEFAULT 0,
    metadata        TEXT NOT NULL DEFAULT '', -- the Upload-Metadata header as received
    filename        TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL CHECK (state IN ('uploading', 'complete', 'terminated')),
    format_version  BIGINT NOT NULL DEFAULT 1,
    hash_state      BYTEA,                   -- BLAKE3 tree state while uploading
    sealed_tail     BYTEA,                   -- partial last segment, sealed under the DEK
    blake3          TEXT,                    -- hex, once complete
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    completed_at    TIMESTAMPTZ,
    expires_at      TIMESTAMPTZ              -- unfinished uploads: 24 h after the last byte
);
CREATE INDEX uploads_by_tenant ON uploads (tenant_id, state);

-- The file's data key, wrapped by the tenant key. Deleting this row makes the object
-- unreadable at once (crypto-shredding), before its bytes are deleted.
CREATE TABLE file_keys (
    upload_id    UUID PRIMARY KEY NOT NULL REFERENCES uploads(id),
    tenant_id    UUID NOT NULL REFERENCES tenants(id),
    wrapped_dek  BYTEA NOT NULL
);

-- A share is one download link (token) for a set of files; the token is kept only hashed.
CREATE TABLE shares (
    id              UUID PRIMARY KEY NOT NULL,
    tenant_id       UUID NOT NULL REFERENCES tenants(id),
    created_by      UUID NOT NULL REFERENCES api_keys(id),
    token_selector  TEXT NOT NULL UNIQUE,
    token_hash      BYTEA NOT NULL,
    note            TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ
);
CREATE INDEX shares_by_tenant ON shares (tenant_id);

CREATE TABLE share_files (
    share_id   UUID NOT NULL REFERENCES shares(id),
    upload_id  UUID NOT NULL REFERENCES uploads(id),
    position   BIGINT NOT NULL,
    PRIMARY KEY (share_id, upload_id)
);
CREATE INDEX share_files_by_upload ON share_files (upload_id);

CREATE TABLE share_recipients (
    share_id  UUID NOT NULL REFERENCES shares(id),
    email     TEXT NOT NULL,
    PRIMARY KEY (share_id, email)
);
