//! The route table: host name → app, its backends, its routing switches and its certificate,
//! swapped whole in one step; and the counts of requests under way, per backend (for
//! draining) and per app (for the concurrency limit).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use domain::RoutingSettings;
use rustls::sign::CertifiedKey;

/// Where one app's web traffic goes, and how the router treats it.
#[derive(Debug, Clone, Default)]
pub struct AppRoute {
    pub app: String,
    /// Healthy web processes; empty while none is.
    pub backends: Vec<SocketAddr>,
    /// Maintenance, the allow list, HTTPS only. With `enabled` off the app's hosts are not
    /// routed at all.
    pub settings: Arc<RoutingSettings>,
}

/// One host name the router answers to.
#[derive(Debug, Clone)]
pub struct HostRoute {
    /// A lowercase DNS name: `demo.localhost`, `www.example.com`.
    pub host: String,
    pub route: AppRoute,
    /// The certificate served for `host` over HTTPS; `None`: the platform's own.
    pub certificate: Option<Arc<CertifiedKey>>,
}

/// The whole table at one moment.
#[derive(Debug, Default)]
pub(crate) struct Table {
    by_host: HashMap<String, Arc<Entry>>,
    certificates: HashMap<String, Arc<CertifiedKey>>,
}

impl Table {
    pub(crate) fn certificate(&self, host: &str) -> Option<&Arc<CertifiedKey>> {
        self.certificates.get(host)
    }

    pub(crate) fn routes(&self, host: &str) -> bool {
        self.by_host.contains_key(host)
    }

    /// Host names routed.
    pub(crate) fn len(&self) -> usize {
        self.by_host.len()
    }
}

/// One app's route as requests see it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) route: AppRoute,
    /// `route.backends` as request URIs name them, made once per table.
    pub(crate) authorities: Vec<http::uri::Authority>,
    /// Round robin over the backends.
    pub(crate) next: AtomicUsize,
    /// Requests under way to the app; kept across table swaps.
    pub(crate) busy: Arc<AtomicUsize>,
}

/// The router's routes, shared between the release manager (which sets them) and the proxy.
#[derive(Debug, Clone)]
pub struct Routes {
    table: Arc<RwLock<Arc<Table>>>,
    in_flight: Arc<InFlightCounts>,
    /// Requests under way per app, by app name.
    busy: Arc<Mutex<HashMap<String, Arc<AtomicUsize>>>>,
    /// How many tables have been set, for those who watch for changes.
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            table: Arc::default(),
            in_flight: Arc::default(),
            busy: Arc::default(),
            generation: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl Routes {
    /// Replaces every route at once. Hosts of an app whose routing is disabled are left out:
    /// they answer as unknown hosts do.
    pub fn set(&self, hosts: impl IntoIterator<Item = HostRoute>) {
        let mut busy = self.busy.lock().expect("never poisoned");
        let mut by_app: HashMap<String, Arc<Entry>> = HashMap::new();
        let mut table = Table::default();
        for HostRoute {
            host,
            route,
            certificate,
        } in hosts
        {
            if !route.settings.enabled {
                continue;
            }
            let host = host.to_ascii_lowercase();
            let entry = by_app
                .entry(route.app.clone())
                .or_insert_with(|| {
                    let counter = busy.entry(route.app.clone()).or_default();
                    Arc::new(Entry {
                        busy: Arc::clone(counter),
                        authorities: crate::proxy::authorities(&route.backends),
                        route,
                        next: AtomicUsize::new(0),
                    })
                })
                .clone();
            if let Some(certificate) = certificate {
                table.certificates.insert(host.clone(), certificate);
            }
            table.by_host.insert(host, entry);
        }
        // An app that is gone keeps its counter only while requests to it are under way.
        busy.retain(|app, n| by_app.contains_key(app) || n.load(Ordering::Relaxed) > 0);
        *self.table.write().expect("never poisoned") = Arc::new(table);
        self.generation.send_modify(|n| *n += 1);
    }

    /// A receiver that wakes each time the table is set.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The host names routed now.
    pub fn hosts(&self) -> HashSet<String> {
        self.current().by_host.keys().cloned().collect()
    }

    pub(crate) fn current(&self) -> Arc<Table> {
        Arc::clone(&self.table.read().expect("never poisoned"))
    }

    pub(crate) fn lookup(&self, host: &str) -> Option<Arc<Entry>> {
        self.current().by_host.get(host).cloned()
    }

    pub(crate) fn in_flight_counts(&self) -> &Arc<InFlightCounts> {
        &self.in_flight
    }

    /// Waits until no request is under way to any of `backends` (the routes no longer send
    /// them new ones), or until `limit` has passed.
    pub async fn drained(&self, backends: &[SocketAddr], limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.in_flight.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let busy = {
                let counts = self.in_flight.counts.lock().expect("never poisoned");
                backends.iter().any(|b| counts.contains_key(b))
            };
            if !busy || tokio::time::timeout_at(deadline, idle).await.is_err() {
                return;
            }
        }
    }

    /// Requests under way to `backend` now.
    pub fn in_flight(&self, backend: SocketAddr) -> usize {
        self.in_flight
            .counts
            .lock()
            .expect("never poisoned")
            .get(&backend)
            .copied()
            .unwrap_or(0)
    }
}

/// Requests under way per backend, so a process taken out of the routes can be left to
/// finish them before it is stopped.
#[derive(Debug, Default)]
pub(crate) struct InFlightCounts {
    counts: Mutex<HashMap<SocketAddr, usize>>,
    /// Woken whenever a backend's count drops to zero.
    idle: tokio::sync::Notify,
}

/// One request under way to `backend`; counted until dropped (with the response body, or
/// when an upgraded connection closes).
#[derive(Debug)]
pub(crate) struct InFlight {
    counts: Arc<InFlightCounts>,
    backend: SocketAddr,
}

impl InFlight {
    pub(crate) fn new(counts: &Arc<InFlightCounts>, backend: SocketAddr) -> InFlight {
        *counts
            .counts
            .lock()
            .expect("never poisoned")
            .entry(backend)
            .or_default() += 1;
        InFlight {
            counts: Arc::clone(counts),
            backend,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().expect("never poisoned");
        if let Some(n) = counts.get_mut(&self.backend) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.backend);
                self.counts.idle.notify_waiters();
            }
        }
    }
}

/// One request counted against its app's concurrency limit until dropped.
#[derive(Debug)]
pub(crate) struct Busy(Arc<AtomicUsize>);

impl Busy {
    /// Counts one more request for the app, unless `limit` are under way already.
    pub(crate) fn admit(entry: &Entry, limit: usize) -> Option<Busy> {
        let counter = &entry.busy;
        if counter.fetch_add(1, Ordering::AcqRel) >= limit {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Busy(Arc::clone(counter)))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
