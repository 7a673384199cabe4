//! The local router: requests by host — `<app>.<domain>` or a custom domain — over HTTP and
//! HTTPS, HTTP/1.1 and HTTP/2, to the app's healthy web processes, round robin.
//!
//! The whole route table is one immutable value; [`Routes::set`] swaps it in one step, so a
//! request sees either the old table or the new one, never a mix: a deploy, rollback,
//! restart, scale or routing switch takes effect at once. A request whose backend refuses
//! the connection before anything was sent is tried on the app's next backend, so a process
//! that has just stopped loses no request. An unknown host gets a 404 page, an app with no
//! healthy process a 503. HTTPS picks each connection's certificate by SNI from the same
//! table (`tls`). Requests and responses stream both ways; an `Upgrade` (a WebSocket)
//! becomes a tunnel between the client and the backend.
//!
//! Every request answered is counted ([`RequestMetrics`]): per app and minute, status class
//! and latency, until the release manager drains the counts into the store.
//!
//! Architecture invariant: the router knows nothing of the store, of processes or of where
//! certificates come from; the release manager tells it where each app's web processes
//! listen, how the app is routed and which certificate each host has.

mod metrics;
mod proxy;
mod routes;
mod server;
mod tls;

pub use metrics::{MAX_MINUTES_KEPT, RequestMetrics};
pub use proxy::{
    Challenges, MAX_IN_FLIGHT_PER_APP, RESPONSE_TIMEOUT, RequestLog, Router, RouterConfig,
};
pub use routes::{AppRoute, HostRoute, Routes};
pub use server::{Limits, accept_loop};
pub use tls::{Issued, Issuer, server_config};
