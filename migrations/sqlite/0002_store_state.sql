-- The object store's own resumable state for an unfinished upload, committed in the same update
-- as the offset it belongs to. For S3: the multipart UploadId, the part size, the ETags of the
-- parts uploaded so far and the pending pieces (whole sealed segments that do not fill a part
-- yet). NULL for the disk store, whose object is its own state.
ALTER TABLE uploads ADD COLUMN store_state BLOB;
