-- A custom domain routes only once its owner has proved control of it: `domains:add` stores it
-- pending with a random token, and `domains:verify` finds that token in the TXT record
-- `_slipway-challenge.<domain>` and sets verified_at. Several apps may hold the same name
-- pending (so nobody can squat a name by claiming it first); only one may hold it verified.
-- SQLite cannot change a primary key in place, so the table is rebuilt.
-- Rows from before this migration are kept as verified (verified_at = created_at), so no
-- domain that routed stops routing on upgrade.
CREATE TABLE domains_new (
    domain             TEXT NOT NULL,
    app_id             BLOB NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    created_at         TEXT NOT NULL,
    verification_token TEXT,
    verified_at        TEXT,
    PRIMARY KEY (domain, app_id)
);
INSERT INTO domains_new (domain, app_id, created_at, verification_token, verified_at)
    SELECT domain, app_id, created_at, NULL, created_at FROM domains;
DROP TABLE domains;
ALTER TABLE domains_new RENAME TO domains;
CREATE INDEX domains_app ON domains (app_id);
CREATE UNIQUE INDEX domains_verified ON domains (domain) WHERE verified_at IS NOT NULL;
