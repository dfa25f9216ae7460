-- The expiry job's bookkeeping on uploads.
-- destroyed_at: when the object's bytes were deleted from the store (after the key was
--   shredded); NULL for live uploads and files, and for a tombstone whose object deletion has not
--   happened yet (a crash, a store outage), which the next expiry pass completes.
-- claimed_until / claimed_by: a pass's lease on the row, so that instances running the job at
--   the same time never process one row twice; a crashed pass's claim simply runs out.
ALTER TABLE uploads ADD COLUMN destroyed_at TEXT;
ALTER TABLE uploads ADD COLUMN claimed_until TEXT;
ALTER TABLE uploads ADD COLUMN claimed_by TEXT;
CREATE INDEX uploads_by_expiry ON uploads (state, expires_at);
