-- 0010: blob bytes go to the pack file beside the database (ARCHIVE-pack,
-- see SCHEMA.md "Pack file"): appended in large sequential writes and
-- synced once before each transaction that records them commits, instead
-- of copied through SQLite's page cache, WAL and checkpoint in 1 MiB rows.
-- pack_offset is where a blob's size bytes start in the pack; NULL for
-- blobs stored before this step, whose bytes stay in blob_chunks (chunks
-- > 0) and are read from there.

ALTER TABLE blobs ADD COLUMN pack_offset INTEGER;
