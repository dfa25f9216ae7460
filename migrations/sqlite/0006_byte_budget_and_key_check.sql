-- Downloads are metered in bytes: each response reserves the bytes of its range before the
-- first byte leaves and gives back what it did not send. The limit of the tenant's policy is
-- N copies' worth of the file (plus a small allowance for bytes lost in flight), so a range
-- request, a resumed download or a HEAD can never spend a copy it did not deliver.
-- The former per-response counter carries over as whole copies.
ALTER TABLE share_files ADD COLUMN bytes_served INTEGER NOT NULL DEFAULT 0;
UPDATE share_files SET bytes_served = downloads * COALESCE(
    (SELECT CASE WHEN u.length IS NULL OR u.length < 1 THEN 1 ELSE u.length END
     FROM uploads u WHERE u.id = share_files.upload_id), 1);

-- A key check value for the master key: a MAC of a fixed text under a key derived from it.
-- A server started with another master key than the one the database's keys are wrapped
-- under refuses to start instead of wrapping new keys under a key nobody kept.
CREATE TABLE master_key_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    kcv    BLOB NOT NULL
);
