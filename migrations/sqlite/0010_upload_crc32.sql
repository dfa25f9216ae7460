-- CRC-32 of each file, computed as it uploads (kept in hash_state meanwhile), so the headers of
-- "download all" (/d/{token}/all.zip) are known before a byte is sent (issue 17). NULL for files
-- completed before this column: computed once when an archive first needs it. The same change
-- as migrations/postgres/0010_upload_crc32.sql.
ALTER TABLE uploads ADD COLUMN crc32 INTEGER;
