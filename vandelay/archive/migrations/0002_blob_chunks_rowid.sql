-- 0002: blob_chunks becomes a rowid table. As a WITHOUT ROWID table the
-- chunk bytes lived inside the primary-key B-tree, so every insert walked
-- and compared large payloads (SQLite advises WITHOUT ROWID only for rows
-- under ~1/20 of a page); measured: ~30 % of an import's CPU.

CREATE TABLE blob_chunks_new (
	hash TEXT NOT NULL REFERENCES blobs(hash) ON DELETE CASCADE,
	n    INTEGER NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (hash, n)
) STRICT;
INSERT INTO blob_chunks_new (hash, n, data) SELECT hash, n, data FROM blob_chunks;
DROP TABLE blob_chunks;
ALTER TABLE blob_chunks_new RENAME TO blob_chunks;
