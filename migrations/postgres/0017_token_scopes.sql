-- Tokens for automation: a description, and optionally a scope limiting the token to one
-- app (deploy: read and deploy it; read: only read it). A token goes with its app.
ALTER TABLE api_tokens ADD COLUMN description TEXT;
ALTER TABLE api_tokens ADD COLUMN app_id UUID REFERENCES apps (id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN scope TEXT CHECK (scope IN ('deploy', 'read'));
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope_has_app CHECK ((app_id IS NULL) = (scope IS NULL));
CREATE INDEX api_tokens_app ON api_tokens (app_id);
