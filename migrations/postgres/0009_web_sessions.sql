-- Issue 13. Dashboard sign-ins: the browser holds a random secret in a cookie; the store keeps
-- only its SHA-256, the user, the session's CSRF token and when it ends. Signing out deletes
-- the row, so a copied cookie is worthless from then on; so is one past expires_at.
CREATE TABLE web_sessions (
    secret_hash TEXT PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
