-- People signed in through Entra ID (the Outlook add-in) own uploads and shares as API keys
-- do: see migrations/postgres/0007_principals_and_entra.sql for the model.
--
-- SQLite cannot change a foreign key in place: uploads and shares are rebuilt with owners
-- referencing principals, the way SQLite's documentation prescribes — in one transaction, on
-- a connection with foreign keys off (`db::connect_sqlite` runs every migration so, and
-- checks all foreign keys before the pool opens).

CREATE TABLE principals (
    id               BLOB PRIMARY KEY NOT NULL,
    tenant_id        BLOB NOT NULL REFERENCES tenants(id),
    kind             TEXT NOT NULL CHECK (kind IN ('api_key', 'entra_user')),
    entra_tenant_id  BLOB,
    entra_object_id  BLOB,
    address          TEXT,
    created_at       TEXT NOT NULL,
    CHECK ((kind = 'entra_user') = (entra_tenant_id IS NOT NULL AND entra_object_id IS NOT NULL))
);
CREATE UNIQUE INDEX principals_by_entra_user
    ON principals (tenant_id, entra_tenant_id, entra_object_id);
INSERT INTO principals (id, tenant_id, kind, created_at)
    SELECT id, tenant_id, 'api_key', created_at FROM api_keys;

CREATE TABLE uploads_rebuilt (
    id              BLOB PRIMARY KEY NOT NULL,
    tenant_id       BLOB NOT NULL REFERENCES tenants(id),
    owner_id        BLOB NOT NULL REFERENCES principals(id),
    length          INTEGER,
    upload_offset   INTEGER NOT NULL DEFAULT 0,
    metadata        TEXT NOT NULL DEFAULT '',
    filename        TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL CHECK (state IN ('uploading', 'complete', 'terminated')),
    format_version  INTEGER NOT NULL DEFAULT 1,
    hash_state      BLOB,
    sealed_tail     BLOB,
    blake3          TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    completed_at    TEXT,
    expires_at      TEXT,
    store_state     BLOB,
    destroyed_at    TEXT,
    claimed_until   TEXT,
    claimed_by      TEXT
);
INSERT INTO uploads_rebuilt (id, tenant_id, owner_id, length, upload_offset, metadata, filename,
        state, format_version, hash_state, sealed_tail, blake3, created_at, updated_at,
        completed_at, expires_at, store_state, destroyed_at, claimed_until, claimed_by)
    SELECT id, tenant_id, owner_key_id, length, upload_offset, metadata, filename,
        state, format_version, hash_state, sealed_tail, blake3, created_at, updated_at,
        completed_at, expires_at, store_state, destroyed_at, claimed_until, claimed_by
    FROM uploads;
DROP TABLE uploads;
ALTER TABLE uploads_rebuilt RENAME TO uploads;
CREATE INDEX uploads_by_tenant ON uploads (tenant_id, state);
CREATE INDEX uploads_by_expiry ON uploads (state, expires_at);

CREATE TABLE shares_rebuilt (
    id              BLOB PRIMARY KEY NOT NULL,
    tenant_id       BLOB NOT NULL REFERENCES tenants(id),
    created_by      BLOB NOT NULL REFERENCES principals(id),
    token_selector  TEXT NOT NULL UNIQUE,
    token_hash      BLOB NOT NULL,
    note            TEXT,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    revoked_at      TEXT,
    ended_at        TEXT
);
INSERT INTO shares_rebuilt (id, tenant_id, created_by, token_selector, token_hash, note,
        created_at, expires_at, revoked_at, ended_at)
    SELECT id, tenant_id, created_by, token_selector, token_hash, note,
        created_at, expires_at, revoked_at, ended_at
    FROM shares;
DROP TABLE shares;
ALTER TABLE shares_rebuilt RENAME TO shares;
CREATE INDEX shares_by_tenant ON shares (tenant_id);
CREATE INDEX shares_by_end ON shares (ended_at, expires_at);

CREATE TABLE entra_links (
    entra_tenant_id  BLOB PRIMARY KEY NOT NULL,
    tenant_id        BLOB NOT NULL REFERENCES tenants(id),
    linked_at        TEXT NOT NULL
);
CREATE INDEX entra_links_by_tenant ON entra_links (tenant_id);
