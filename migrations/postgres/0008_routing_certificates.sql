-- Issue 12. Each app's routing switches (maintenance, routing on/off, the IP allow list,
-- HTTPS only and HSTS) as the JSON of `domain::RoutingSettings`; '{}' reads as the default.
ALTER TABLE apps ADD COLUMN routing TEXT NOT NULL DEFAULT '{}';

-- Certificates uploaded by an app's collaborators (`slip certs:add`), checked before they are
-- stored. names is the JSON array of DNS names the leaf covers; fingerprint the SHA-256 of
-- the leaf's DER, in hex. The key never leaves the store but for the router.
CREATE TABLE certificates (
    id          UUID PRIMARY KEY,
    app_id      UUID NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    chain_pem   TEXT NOT NULL,
    key_pem     TEXT NOT NULL,
    names       TEXT NOT NULL,
    not_before  TIMESTAMPTZ NOT NULL,
    not_after   TIMESTAMPTZ NOT NULL,
    fingerprint TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT NOT NULL,
    UNIQUE (app_id, name)
);

-- The uploaded certificate served for a custom domain; removing the certificate detaches it.
ALTER TABLE domains ADD COLUMN certificate_id UUID REFERENCES certificates (id) ON DELETE SET NULL;

-- Certificates obtained from the ACME server, one per host name, renewed in place.
CREATE TABLE acme_certificates (
    host      TEXT PRIMARY KEY,
    app_id    UUID NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    chain_pem TEXT NOT NULL,
    key_pem   TEXT NOT NULL,
    not_after TIMESTAMPTZ NOT NULL,
    issued_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX acme_certificates_app ON acme_certificates (app_id);
