-- Tokens for automation: a description, and optionally a scope limiting the token to one
-- app (deploy: read and deploy it; read: only read it). A token goes with its app.
ALTER TABLE api_tokens ADD COLUMN description TEXT;
ALTER TABLE api_tokens ADD COLUMN app_id BLOB REFERENCES apps (id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN scope TEXT CHECK (scope IN ('deploy', 'read'));
CREATE INDEX api_tokens_app ON api_tokens (app_id);
