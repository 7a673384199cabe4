-- A custom domain routes only once its owner has proved control of it: `domains:add` stores it
-- pending with a random token, and `domains:verify` finds that token in the TXT record
-- `_slipway-challenge.<domain>` and sets verified_at. Several apps may hold the same name
-- pending (so nobody can squat a name by claiming it first); only one may hold it verified.
-- Rows from before this migration are kept as verified (verified_at = created_at), so no
-- domain that routed stops routing on upgrade.
ALTER TABLE domains ADD COLUMN verification_token TEXT;
ALTER TABLE domains ADD COLUMN verified_at TIMESTAMPTZ;
UPDATE domains SET verified_at = created_at;
ALTER TABLE domains DROP CONSTRAINT domains_pkey;
ALTER TABLE domains ADD PRIMARY KEY (domain, app_id);
CREATE UNIQUE INDEX domains_verified ON domains (domain) WHERE verified_at IS NOT NULL;
