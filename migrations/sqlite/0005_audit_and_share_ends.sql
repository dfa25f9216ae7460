-- The audit log, the expiry of shares and files, download counts, a download limit.
--
-- audit_events: append-only, one chain per tenant. Each event's hash is a keyed BLAKE3 (the
-- key derived from the master key for that tenant) over every other column and the previous
-- event's hash, so changing, removing or inserting a row breaks the chain from there on.
CREATE TABLE audit_events (
    tenant_id  BLOB NOT NULL REFERENCES tenants(id),
    seq        INTEGER NOT NULL CHECK (seq >= 1),   -- 1, 2, 3… within the tenant
    id         BLOB NOT NULL UNIQUE,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,                       -- e.g. 'share.created', 'file.expired'
    actor      TEXT NOT NULL,                       -- 'key:<uuid>', 'recipient', 'system', 'operator'
    subject    BLOB,                                -- the upload, file, share or key concerned
    details    TEXT NOT NULL,                       -- a JSON object
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_events_by_time ON audit_events (tenant_id, at);

-- The end of each tenant's chain. Appending updates this row first, which serialises appends
-- to one chain on every backend; verification compares it with the last event.
CREATE TABLE audit_heads (
    tenant_id  BLOB PRIMARY KEY NOT NULL REFERENCES tenants(id),
    seq        INTEGER NOT NULL,
    hash       BLOB NOT NULL
);

-- ended_at: when the share's end was recorded (revoked, or its expiry processed by the job,
-- each with an audit event). Setting it is guarded by "ended_at IS NULL", so two passes of the
-- job never both record one expiry, without a claim.
ALTER TABLE shares ADD COLUMN ended_at TEXT;
CREATE INDEX shares_by_end ON shares (ended_at, expires_at);

-- Downloads of each file through each share: responses that served the file's first byte.
ALTER TABLE share_files ADD COLUMN downloads INTEGER NOT NULL DEFAULT 0;

-- NULL: no limit.
ALTER TABLE tenant_policies ADD COLUMN max_downloads_per_file INTEGER
    CHECK (max_downloads_per_file >= 1);
