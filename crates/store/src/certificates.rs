//! Certificates for HTTPS: those an app's collaborators upload (checked by the API before
//! they reach the store) and attach to its custom domains, and those obtained from the ACME
//! server, one per host. Every change commits together with the [`WorkKind::Hosts`] that
//! hands it to the router.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{new_id, now, on_db, record_event};
use crate::error::conflict_on_unique;
use crate::work::enqueue_on;
use crate::{App, Error, Result, Store, User, WorkKind};

/// The most uploaded certificates one app may hold.
pub const MAX_CERTIFICATES: i64 = 100;

/// An uploaded certificate as the store returns it: everything but its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub id: Uuid,
    /// Unique within the app; chosen by whoever uploaded it.
    pub name: String,
    /// The leaf first, then its intermediates.
    pub chain_pem: String,
    /// The DNS names the leaf covers (`*.example.com` for a wildcard).
    pub names: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// SHA-256 of the leaf's DER, in hex.
    pub fingerprint: String,
    pub issuer: String,
    pub subject: String,
    pub created_at: OffsetDateTime,
    pub created_by: String,
    /// The app's custom domains it is attached to, in order.
    pub domains: Vec<String>,
}

impl Certificate {
    /// Whether the certificate is valid for `host`: an exact name, or a one-label wildcard.
    pub fn covers(&self, host: &str) -> bool {
        domain::certificate_covers(&self.names, host)
    }
}

/// A certificate to store, as the API checked it.
#[derive(Clone)]
pub struct NewCertificate {
    pub name: String,
    pub chain_pem: String,
    pub key_pem: String,
    pub names: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub fingerprint: String,
    pub issuer: String,
    pub subject: String,
}

impl std::fmt::Debug for NewCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: it never reaches a log.
        f.debug_struct("NewCertificate")
            .field("name", &self.name)
            .field("names", &self.names)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// A chain and its key, as the router serves them for a host.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyedCertificate {
    pub chain_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for KeyedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedCertificate")
            .field("chain", &format_args!("{} bytes", self.chain_pem.len()))
            .finish_non_exhaustive()
    }
}

/// The uploaded certificate attached to one of an app's custom domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedCertificate {
    pub domain: String,
    pub name: String,
    pub not_after: OffsetDateTime,
    pub pem: KeyedCertificate,
}

/// The certificate a host is served with over HTTPS, when it is not the platform's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServedCertificate {
    /// An uploaded certificate attached to the host, a custom domain.
    Uploaded {
        name: String,
        not_after: OffsetDateTime,
        pem: KeyedCertificate,
    },
    /// One the ACME server issued for the host, not yet expired.
    Acme {
        not_after: OffsetDateTime,
        pem: KeyedCertificate,
    },
}

impl ServedCertificate {
    pub fn pem(&self) -> &KeyedCertificate {
        match self {
            ServedCertificate::Uploaded { pem, .. } | ServedCertificate::Acme { pem, .. } => pem,
        }
    }

    pub fn not_after(&self) -> OffsetDateTime {
        match self {
            ServedCertificate::Uploaded { not_after, .. }
            | ServedCertificate::Acme { not_after, .. } => *not_after,
        }
    }
}

/// A certificate obtained from the ACME server for one host.
#[derive(Clone, PartialEq, Eq)]
pub struct AcmeCertificate {
    pub app_id: Uuid,
    pub host: String,
    pub chain_pem: String,
    pub key_pem: String,
    pub not_after: OffsetDateTime,
    pub issued_at: OffsetDateTime,
}

impl std::fmt::Debug for AcmeCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeCertificate")
            .field("app_id", &self.app_id)
            .field("host", &self.host)
            .field("not_after", &self.not_after)
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}

const CERTIFICATE_SELECT: &str = "SELECT id, name, chain_pem, names, not_before, not_after, \
                                  fingerprint, issuer, subject, created_at, created_by \
                                  FROM certificates";

#[derive(sqlx::FromRow)]
struct CertificateRow {
    id: Uuid,
    name: String,
    chain_pem: String,
    names: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    fingerprint: String,
    issuer: String,
    subject: String,
    created_at: OffsetDateTime,
    created_by: String,
}

impl CertificateRow {
    fn into_certificate(self, domains: Vec<String>) -> Result<Certificate> {
        let names = serde_json::from_str(&self.names)
            .map_err(|e| Error::corrupt(format!("the names of certificate {}: {e}", self.name)))?;
        Ok(Certificate {
            id: self.id,
            name: self.name,
            chain_pem: self.chain_pem,
            names,
            not_before: self.not_before,
            not_after: self.not_after,
            fingerprint: self.fingerprint,
            issuer: self.issuer,
            subject: self.subject,
            created_at: self.created_at,
            created_by: self.created_by,
            domains,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AcmeRow {
    app_id: Uuid,
    host: String,
    chain_pem: String,
    key_pem: String,
    not_after: OffsetDateTime,
    issued_at: OffsetDateTime,
}

impl From<AcmeRow> for AcmeCertificate {
    fn from(row: AcmeRow) -> AcmeCertificate {
        AcmeCertificate {
            app_id: row.app_id,
            host: row.host,
            chain_pem: row.chain_pem,
            key_pem: row.key_pem,
            not_after: row.not_after,
            issued_at: row.issued_at,
        }
    }
}

const ACME_SELECT: &str =
    "SELECT app_id, host, chain_pem, key_pem, not_after, issued_at FROM acme_certificates";

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("certificate {name}"))
}

impl Store {
    /// The app's uploaded certificates, by name.
    pub async fn certificates(&self, app: &App) -> Result<Vec<Certificate>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{CERTIFICATE_SELECT} WHERE app_id = $1 ORDER BY name"
        ));
        let (rows, attached): (Vec<CertificateRow>, Vec<(Uuid, String)>) =
            on_db!(self, read, |pool| {
                let rows = sqlx::query_as(sql).bind(app.id).fetch_all(pool).await?;
                let attached = sqlx::query_as(
                    "SELECT certificate_id, domain FROM domains \
                     WHERE app_id = $1 AND certificate_id IS NOT NULL ORDER BY domain",
                )
                .bind(app.id)
                .fetch_all(pool)
                .await?;
                Ok::<_, Error>((rows, attached))
            })?;
        rows.into_iter()
            .map(|row| {
                let domains = attached
                    .iter()
                    .filter(|(id, _)| *id == row.id)
                    .map(|(_, domain)| domain.clone())
                    .collect();
                row.into_certificate(domains)
            })
            .collect()
    }

    /// One of the app's uploaded certificates.
    pub async fn certificate(&self, app: &App, name: &str) -> Result<Certificate> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{CERTIFICATE_SELECT} WHERE app_id = $1 AND name = $2"
        ));
        let (row, domains): (Option<CertificateRow>, Vec<String>) = on_db!(self, read, |pool| {
            let row: Option<CertificateRow> = sqlx::query_as(sql)
                .bind(app.id)
                .bind(name)
                .fetch_optional(pool)
                .await?;
            let domains = match &row {
                Some(row) => {
                    sqlx::query_scalar(
                        "SELECT domain FROM domains WHERE app_id = $1 AND certificate_id = $2 \
                         ORDER BY domain",
                    )
                    .bind(app.id)
                    .bind(row.id)
                    .fetch_all(pool)
                    .await?
                }
                None => Vec::new(),
            };
            Ok::<_, Error>((row, domains))
        })?;
        row.ok_or_else(|| not_found(name))?
            .into_certificate(domains)
    }

    /// Stores an uploaded certificate and attaches it to every custom domain of the app it
    /// covers that has none yet; answers with the certificate (and so those domains).
    pub async fn add_certificate(
        &self,
        app: &App,
        new: &NewCertificate,
        actor: &User,
    ) -> Result<Certificate> {
        let id = new_id();
        let names = serde_json::to_string(&new.names).map_err(Error::corrupt)?;
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let (held,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM certificates WHERE app_id = $1")
                    .bind(app.id)
                    .fetch_one(&mut *tx)
                    .await?;
            if held >= MAX_CERTIFICATES {
                return Err(Error::Conflict(format!(
                    "{} has {MAX_CERTIFICATES} certificates, the most an app may have: remove one first",
                    app.name
                )));
            }
            sqlx::query(
                "INSERT INTO certificates (id, app_id, name, chain_pem, key_pem, names, \
                 not_before, not_after, fingerprint, issuer, subject, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(id)
            .bind(app.id)
            .bind(&new.name)
            .bind(&new.chain_pem)
            .bind(&new.key_pem)
            .bind(&names)
            .bind(new.not_before)
            .bind(new.not_after)
            .bind(&new.fingerprint)
            .bind(&new.issuer)
            .bind(&new.subject)
            .bind(now())
            .bind(&actor.username)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                conflict_on_unique(e, || {
                    format!(
                        "{} already has a certificate named {}: remove it first or choose another name",
                        app.name, new.name
                    )
                })
            })?;
            let bare: Vec<String> = sqlx::query_scalar(
                "SELECT domain FROM domains WHERE app_id = $1 AND certificate_id IS NULL",
            )
            .bind(app.id)
            .fetch_all(&mut *tx)
            .await?;
            for domain in bare
                .iter()
                .filter(|d| domain::certificate_covers(&new.names, d))
            {
                sqlx::query(
                    "UPDATE domains SET certificate_id = $3 WHERE app_id = $1 AND domain = $2",
                )
                .bind(app.id)
                .bind(domain)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            enqueue_on!(&mut *tx, app.name, WorkKind::Hosts)?;
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "certs.add", detail: format!("{} {}", new.name, new.fingerprint))?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        self.announce().await;
        self.certificate(app, &new.name).await
    }

    /// Removes an uploaded certificate; the domains it was attached to get none.
    pub async fn remove_certificate(&self, app: &App, name: &str, actor: &User) -> Result<()> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let id: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM certificates WHERE app_id = $1 AND name = $2")
                    .bind(app.id)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            let id = id.ok_or_else(|| not_found(name))?;
            sqlx::query("UPDATE domains SET certificate_id = NULL WHERE certificate_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM certificates WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            enqueue_on!(&mut *tx, app.name, WorkKind::Hosts)?;
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "certs.remove", detail: name)?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        self.announce().await;
        Ok(())
    }

    /// Serves the certificate `name` for the app's custom domain `domain` (in place of any
    /// other); refused unless the domain is the app's and the certificate covers it.
    pub async fn attach_certificate(
        &self,
        app: &App,
        name: &str,
        domain: &str,
        actor: &User,
    ) -> Result<Certificate> {
        let certificate = self.certificate(app, name).await?;
        if !certificate.covers(domain) {
            return Err(Error::Conflict(format!(
                "the certificate {name} does not cover {domain} (it covers {}): upload one that does",
                certificate.names.join(", ")
            )));
        }
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE domains SET certificate_id = $3 WHERE app_id = $1 AND domain = $2",
            )
            .bind(app.id)
            .bind(domain)
            .bind(certificate.id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(format!("domain {domain}")));
            }
            // The certificate may have been removed since it was read.
            let still: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM certificates WHERE id = $1")
                    .bind(certificate.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if still.is_none() {
                return Err(not_found(name));
            }
            enqueue_on!(&mut *tx, app.name, WorkKind::Hosts)?;
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "certs.attach", detail: format!("{name} {domain}"))?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        self.announce().await;
        self.certificate(app, name).await
    }

    /// Stops serving the certificate `name` for `domain`; refused unless it is attached there.
    pub async fn detach_certificate(
        &self,
        app: &App,
        name: &str,
        domain: &str,
        actor: &User,
    ) -> Result<Certificate> {
        let certificate = self.certificate(app, name).await?;
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE domains SET certificate_id = NULL \
                 WHERE app_id = $1 AND domain = $2 AND certificate_id = $3",
            )
            .bind(app.id)
            .bind(domain)
            .bind(certificate.id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(format!(
                    "the certificate {name} attached to domain {domain}"
                )));
            }
            enqueue_on!(&mut *tx, app.name, WorkKind::Hosts)?;
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "certs.detach", detail: format!("{name} {domain}"))?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        self.announce().await;
        self.certificate(app, name).await
    }

    /// Each of the app's custom domains that has an uploaded certificate attached, with it
    /// and its key: what the router serves.
    pub async fn attached_certificates(&self, app: &App) -> Result<Vec<AttachedCertificate>> {
        type Row = (String, String, OffsetDateTime, String, String);
        let rows: Vec<Row> = on_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT d.domain, c.name, c.not_after, c.chain_pem, c.key_pem FROM domains d \
                 JOIN certificates c ON c.id = d.certificate_id \
                 WHERE d.app_id = $1 AND c.app_id = $1 ORDER BY d.domain",
            )
            .bind(app.id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(domain, name, not_after, chain_pem, key_pem)| AttachedCertificate {
                    domain,
                    name,
                    not_after,
                    pem: KeyedCertificate { chain_pem, key_pem },
                },
            )
            .collect())
    }

    /// The certificate each of the app's `hosts` is served with, in order: the uploaded one
    /// attached to it, else the app's ACME one still valid at `now`, else `None` (the
    /// platform's own). The one rule the release manager and the API both follow.
    pub async fn served_certificates(
        &self,
        app: &App,
        hosts: &[String],
        now: OffsetDateTime,
    ) -> Result<Vec<Option<ServedCertificate>>> {
        let attached = self.attached_certificates(app).await?;
        let mut served = Vec::with_capacity(hosts.len());
        for host in hosts {
            let certificate = match attached.iter().find(|a| a.domain == *host) {
                Some(a) => Some(ServedCertificate::Uploaded {
                    name: a.name.clone(),
                    not_after: a.not_after,
                    pem: a.pem.clone(),
                }),
                None => self
                    .acme_certificate(host)
                    .await?
                    .filter(|acme| acme.app_id == app.id && acme.not_after > now)
                    .map(|acme| ServedCertificate::Acme {
                        not_after: acme.not_after,
                        pem: KeyedCertificate {
                            chain_pem: acme.chain_pem,
                            key_pem: acme.key_pem,
                        },
                    }),
            };
            served.push(certificate);
        }
        Ok(served)
    }

    /// The certificate the ACME server issued for `host`, if one is stored.
    pub async fn acme_certificate(&self, host: &str) -> Result<Option<AcmeCertificate>> {
        let sql = sqlx::AssertSqlSafe(format!("{ACME_SELECT} WHERE host = $1"));
        let row: Option<AcmeRow> = on_db!(self, read, |pool| {
            sqlx::query_as(sql).bind(host).fetch_optional(pool).await
        })?;
        Ok(row.map(AcmeCertificate::from))
    }

    /// Every stored ACME certificate, soonest to expire first: what the renewal loop walks.
    pub async fn acme_certificates(&self) -> Result<Vec<AcmeCertificate>> {
        let sql = sqlx::AssertSqlSafe(format!("{ACME_SELECT} ORDER BY not_after, host"));
        let rows: Vec<AcmeRow> =
            on_db!(self, read, |pool| sqlx::query_as(sql).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(AcmeCertificate::from).collect())
    }

    /// Stores the certificate the ACME server issued for `host`, one of the app's, in place
    /// of any before it, and queues the app's hosts so the router serves it.
    pub async fn save_acme_certificate(
        &self,
        app: &App,
        host: &str,
        chain_pem: &str,
        key_pem: &str,
        not_after: OffsetDateTime,
    ) -> Result<AcmeCertificate> {
        let issued_at = now();
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO acme_certificates (host, app_id, chain_pem, key_pem, not_after, issued_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (host) DO UPDATE SET app_id = excluded.app_id, \
                 chain_pem = excluded.chain_pem, key_pem = excluded.key_pem, \
                 not_after = excluded.not_after, issued_at = excluded.issued_at",
            )
            .bind(host)
            .bind(app.id)
            .bind(chain_pem)
            .bind(key_pem)
            .bind(not_after)
            .bind(issued_at)
            .execute(&mut *tx)
            .await?;
            enqueue_on!(&mut *tx, app.name, WorkKind::Hosts)?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        self.announce().await;
        Ok(AcmeCertificate {
            app_id: app.id,
            host: host.to_owned(),
            chain_pem: chain_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            not_after,
            issued_at,
        })
    }
}
