-- Deploy keys: an SSH key added to one app acts as the user who added it, limited to that
-- app (clone and push). NULL is a personal key. A deploy key goes with its app.
ALTER TABLE ssh_keys ADD COLUMN app_id BLOB REFERENCES apps (id) ON DELETE CASCADE;
CREATE INDEX ssh_keys_app ON ssh_keys (app_id);
