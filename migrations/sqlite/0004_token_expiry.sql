-- API tokens expire. A token made before this migration has no expiry recorded and is
-- treated as expired: its owner logs in again.
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
