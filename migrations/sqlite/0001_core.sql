-- Core schema: tenants and their API keys, uploads (which become files), wrapped data keys,
-- shares with their files and recipients. Ids are UUIDs (16-byte blobs), times RFC 3339 text.

CREATE TABLE tenants (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

-- API keys are shown once; only the SHA-256 of their 256-bit secret is kept. The selector is a
-- separate random prefix so lookups never compare secrets with an index.
CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    tenant_id    BLOB NOT NULL REFERENCES tenants(id),
    role         TEXT NOT NULL CHECK (role IN ('admin', 'sender')),
    selector     TEXT NOT NULL UNIQUE,
    secret_hash  BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);

-- One row per tus upload; once its last byte is stored it is a file (state 'complete').
-- upload_offset counts plaintext bytes durably stored: full segments in the object plus the
-- sealed partial segment kept here in sealed_tail.
CREATE TABLE uploads (
    id              BLOB PRIMARY KEY NOT NULL,
    tenant_id       BLOB NOT NULL REFERENCES tenants(id),
    owner_key_id    BLOB NOT NULL REFERENCES api_keys(id),
    length          INTEGER,                 -- NULL while the length is deferred
    upload_offset   INTEGER NOT NULL DEFAULT 0,
    metadata        TEXT NOT NULL DEFAULT '', -- the Upload-Metadata header as received
    filename        TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL CHECK (state IN ('uploading', 'complete', 'terminated')),
    format_version  INTEGER NOT NULL DEFAULT 1,
    hash_state      BLOB,                    -- BLAKE3 tree state while uploading
    sealed_tail     BLOB,                    -- partial last segment, sealed under the DEK
    blake3          TEXT,                    -- hex, once complete
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    completed_at    TEXT,
    expires_at      TEXT                     -- unfinished uploads: 24 h after the last byte
);
CREATE INDEX uploads_by_tenant ON uploads (tenant_id, state);

-- The file's data key, wrapped by the tenant key. Deleting this row makes the object
-- unreadable at once (crypto-shredding), before its bytes are deleted.
CREATE TABLE file_keys (
    upload_id    BLOB PRIMARY KEY NOT NULL REFERENCES uploads(id),
    tenant_id    BLOB NOT NULL REFERENCES tenants(id),
    wrapped_dek  BLOB NOT NULL
);

-- A share is one download link (token) for a set of files; the token is kept only hashed.
CREATE TABLE shares (
    id              BLOB PRIMARY KEY NOT NULL,
    tenant_id       BLOB NOT NULL REFERENCES tenants(id),
    created_by      BLOB NOT NULL REFERENCES api_keys(id),
    token_selector  TEXT NOT NULL UNIQUE,
    token_hash      BLOB NOT NULL,
    note            TEXT,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    revoked_at      TEXT
);
CREATE INDEX shares_by_tenant ON shares (tenant_id);

CREATE TABLE share_files (
    share_id   BLOB NOT NULL REFERENCES shares(id),
    upload_id  BLOB NOT NULL REFERENCES uploads(id),
    position   INTEGER NOT NULL,
    PRIMARY KEY (share_id, upload_id)
);
CREATE INDEX share_files_by_upload ON share_files (upload_id);

CREATE TABLE share_recipients (
    share_id  BLOB NOT NULL REFERENCES shares(id),
    email     TEXT NOT NULL,
    PRIMARY KEY (share_id, email)
);
