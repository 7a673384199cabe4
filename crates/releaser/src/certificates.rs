//! The certificate keeper: with an ACME server configured, every host the router serves —
//! `<app>.<domain>` and each verified custom domain without an uploaded certificate — gets a
//! certificate from it, renewed [`RENEW_BEFORE`] its expiry. Each one obtained is stored,
//! and the app's routing queued again, so the router swaps it in without a restart.
//!
//! It runs beside the local runtime's active release manager, whose router answers the
//! HTTP-01 challenges; on Kubernetes the cluster's own issuer (cert-manager) does this.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use store::{App, Store};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Logs;

/// A certificate is renewed when it has less than this left, as Let's Encrypt advises.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Every host is looked at this often, for renewals, besides whenever the routes change.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The failure entry of the ACME account itself (no host name is empty).
const ACCOUNT: &str = "";

/// After a failed order, a host waits this long before the next, doubling each time.
const RETRY_AFTER: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(6 * 3600));

/// Keeps the routed hosts' ACME certificates current.
#[derive(Debug)]
pub struct CertificateKeeper {
    store: Store,
    config: tls::AcmeConfig,
    challenges: tls::Challenges,
    /// The ACME account, once the server has been reached.
    acme: Option<tls::Acme>,
    routes: router::Routes,
    domain: String,
    logs: Logs,
    /// Hosts whose last order failed: how many times in a row, and when to try again.
    failing: HashMap<String, (u32, Instant)>,
}

impl CertificateKeeper {
    /// `domain` is the platform's (apps answer at `<app>.<domain>`); `routes` are the
    /// router's, watched for hosts that need a certificate; `challenges` are what the
    /// router answers HTTP-01 challenges from.
    pub fn new(
        store: Store,
        config: tls::AcmeConfig,
        challenges: tls::Challenges,
        routes: router::Routes,
        domain: String,
        logs: Logs,
    ) -> CertificateKeeper {
        CertificateKeeper {
            store,
            config,
            challenges,
            acme: None,
            routes,
            domain,
            logs,
            failing: HashMap::new(),
        }
    }

    /// Sweeps when the router's hosts change and every [`SWEEP_EVERY`], until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut changes = self.routes.watch();
        let mut swept: Option<BTreeSet<String>> = None;
        let mut next_sweep = Instant::now();
        loop {
            let hosts: BTreeSet<String> = self.routes.hosts().into_iter().collect();
            let retry_due = self.failing.values().map(|(_, at)| *at).min();
            if swept.as_ref() != Some(&hosts)
                || Instant::now() >= next_sweep
                || retry_due.is_some_and(|at| Instant::now() >= at)
            {
                if let Err(err) = self.sweep().await {
                    tracing::error!(error = %err, "cannot look at the apps' certificates");
                }
                swept = Some(hosts);
                next_sweep = Instant::now() + SWEEP_EVERY;
            }
            let wake = retry_due.map_or(next_sweep, |at| at.min(next_sweep));
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Obtains a certificate for every host of every routed app that lacks a current one;
    /// returns how many it obtained.
    pub async fn sweep(&mut self) -> Result<usize, store::Error> {
        if self.acme.is_none() {
            // The account is made (or read back) the first time the server is needed; a
            // server that cannot be reached now is tried again, as a failing host is.
            if self
                .failing
                .get(ACCOUNT)
                .is_some_and(|(_, at)| Instant::now() < *at)
            {
                return Ok(0);
            }
            match tls::Acme::new(self.config.clone(), self.challenges.clone()).await {
                Ok(acme) => {
                    self.failing.remove(ACCOUNT);
                    self.acme = Some(acme);
                }
                Err(err) => {
                    let wait = self.failed(ACCOUNT);
                    tracing::error!(
                        directory = %self.config.directory,
                        error = %err,
                        "cannot reach the ACME server; trying again in {} min",
                        wait.as_secs() / 60
                    );
                    return Ok(0);
                }
            }
        }
        let mut obtained = 0;
        for app in self.store.all_apps().await? {
            for host in self.hosts(&app).await? {
                if self.due(&host).await? && self.obtain(&app, &host).await {
                    obtained += 1;
                }
            }
        }
        Ok(obtained)
    }

    /// The app's hosts that take an ACME certificate: none while its routing is off; its own
    /// host, and its verified custom domains without an uploaded certificate.
    async fn hosts(&self, app: &App) -> Result<Vec<String>, store::Error> {
        if !self.store.routing_settings(app).await?.enabled {
            return Ok(Vec::new());
        }
        let uploaded: BTreeSet<String> = self
            .store
            .attached_certificates(app)
            .await?
            .into_iter()
            .map(|c| c.domain)
            .collect();
        let mut hosts = vec![format!("{}.{}", app.name, self.domain)];
        hosts.extend(
            self.store
                .domains(app)
                .await?
                .into_iter()
                .filter(|d| d.is_verified() && !uploaded.contains(&d.domain))
                .map(|d| d.domain),
        );
        Ok(hosts)
    }

    /// Whether `host` needs a certificate now: it has none, or one near its expiry, and it
    /// is not waiting out a failure.
    async fn due(&self, host: &str) -> Result<bool, store::Error> {
        if self
            .failing
            .get(host)
            .is_some_and(|(_, at)| Instant::now() < *at)
        {
            return Ok(false);
        }
        let renew_at = OffsetDateTime::now_utc() + RENEW_BEFORE;
        Ok(match self.store.acme_certificate(host).await? {
            Some(certificate) => certificate.not_after <= renew_at,
            None => true,
        })
    }

    /// Orders `host`'s certificate and stores it; a failure is written to the app's log and
    /// tried again later.
    async fn obtain(&mut self, app: &App, host: &str) -> bool {
        let logs = self.logs.clone();
        let say = |line: &str| logs.push(app.name.as_str(), "slipway", line);
        let Some(acme) = &self.acme else {
            return false;
        };
        let issued = match acme.issue(host).await {
            Ok(issued) => issued,
            Err(err) => {
                let wait = self.failed(host);
                say(&format!(
                    "cannot get a certificate for {host} from the ACME server (trying again in {} min): {err}",
                    wait.as_secs().div_ceil(60)
                ));
                return false;
            }
        };
        self.failing.remove(host);
        let not_after = OffsetDateTime::from(issued.not_after);
        match self
            .store
            .save_acme_certificate(app, host, &issued.chain_pem, &issued.key_pem, not_after)
            .await
        {
            Ok(_) => {
                say(&format!(
                    "obtained a certificate for {host} from the ACME server, valid until {}",
                    not_after.date()
                ));
                true
            }
            Err(err) => {
                tracing::error!(%host, error = %err, "cannot store a certificate");
                false
            }
        }
    }

    /// Counts a failure of `what` (a host, or the account) and says how long to wait.
    fn failed(&mut self, what: &str) -> Duration {
        let failures = self.failing.get(what).map_or(0, |(n, _)| *n);
        let wait = RETRY_AFTER
            .0
            .saturating_mul(1 << failures.min(16))
            .min(RETRY_AFTER.1);
        self.failing
            .insert(what.to_owned(), (failures + 1, Instant::now() + wait));
        wait
    }
}
