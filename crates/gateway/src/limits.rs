//! Connection limits for the SSH port: how many connections in all and per source address,
//! how many may still be unauthenticated, and which one goes when there are too many.
//!
//! Like OpenSSH's `MaxStartups` and `PerSourceMaxStartups`, unauthenticated connections are
//! counted on their own: they cost the attacker nothing, so they are the ones that give way.
//! When the unauthenticated ones are at their limit, a new connection evicts the oldest of
//! them (an idle flood keeps rotating out, while a client that authenticates within a
//! moment gets through), and a source address over its own limit is refused. Authenticated
//! connections are never evicted; past the global limit new connections are refused.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The gateway's connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections, in all states. Past it, new connections are refused.
    pub max_connections: usize,
    /// Unauthenticated connections. Past it, the oldest of them is closed for a new one.
    pub max_unauthenticated: usize,
    /// Open connections from one source (an IPv4 address or an IPv6 /64).
    pub max_per_source: usize,
    /// Unauthenticated connections from one source.
    pub max_unauthenticated_per_source: usize,
    /// How long a connection has to authenticate before it is closed.
    pub auth_timeout: Duration,
    /// How long a connection may send nothing at all (not even a keepalive reply).
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 1000,
            max_unauthenticated: 100,
            max_per_source: 50,
            max_unauthenticated_per_source: 10,
            auth_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(15 * 60),
        }
    }
}

/// Where a connection comes from, for the per-source limits: an IPv6 client usually has a
/// whole /64 to pick addresses from, so that counts as one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Source(u128);

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(u128::from(u32::from(v4))),
                None => Source((u128::from(v6) >> 64) << 64 | 1 << 32),
            },
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Full,
    SourceFull,
    SourceUnauthenticatedFull,
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    unauthenticated: usize,
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    /// Unauthenticated connections by admission order, with the token that closes each.
    unauthenticated: BTreeMap<u64, (Source, CancellationToken)>,
    sources: HashMap<Source, Counts>,
    next_id: u64,
}

/// The gate every connection passes: it counts them and hands out [`Slot`]s.
#[derive(Debug)]
pub(crate) struct Gate {
    limits: ConnectionLimits,
    state: Mutex<State>,
}

impl Gate {
    pub(crate) fn new(limits: ConnectionLimits) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            state: Mutex::new(State::default()),
        })
    }

    pub(crate) fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Admits a new connection from `ip`, or says why not. `cut` closes the connection if it
    /// is evicted later. May evict the oldest unauthenticated connection to make room.
    pub(crate) fn admit(
        self: &Arc<Gate>,
        ip: IpAddr,
        cut: CancellationToken,
    ) -> Result<Slot, Refusal> {
        let source = Source::of(ip);
        let mut state = self.state.lock().expect("never poisoned");
        let counts = state.sources.get(&source);
        let (open_here, unauth_here) = counts.map_or((0, 0), |c| (c.open, c.unauthenticated));
        if open_here >= self.limits.max_per_source {
            return Err(Refusal::SourceFull);
        }
        if unauth_here >= self.limits.max_unauthenticated_per_source {
            return Err(Refusal::SourceUnauthenticatedFull);
        }
        if state.open >= self.limits.max_connections && state.unauthenticated.is_empty() {
            return Err(Refusal::Full);
        }
        // Make room: the oldest unauthenticated connections go first. An evicted one still
        // counts as open until it has closed, so the global limit is never overrun.
        while state.unauthenticated.len() >= self.limits.max_unauthenticated.max(1)
            || (state.open >= self.limits.max_connections && !state.unauthenticated.is_empty())
        {
            let Some((_, (old_source, old_cut))) = state.unauthenticated.pop_first() else {
                break;
            };
            if let Some(counts) = state.sources.get_mut(&old_source) {
                counts.unauthenticated -= 1;
            }
            old_cut.cancel();
            if state.open >= self.limits.max_connections {
                // The evicted connection still holds its descriptor until it closes.
                return Err(Refusal::Full);
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        state.open += 1;
        state.unauthenticated.insert(id, (source, cut));
        let counts = state.sources.entry(source).or_default();
        counts.open += 1;
        counts.unauthenticated += 1;
        Ok(Slot {
            gate: Arc::clone(self),
            source,
            id,
        })
    }

    /// How many connections are open and how many of them are unauthenticated.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let state = self.state.lock().expect("never poisoned");
        (state.open, state.unauthenticated.len())
    }
}

/// One admitted connection's place in the counts, given back when it is dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    gate: Arc<Gate>,
    source: Source,
    id: u64,
}

impl Slot {
    /// The connection has authenticated: it no longer counts as unauthenticated and can no
    /// longer be evicted. Returns false if it was evicted already (it is closing).
    pub(crate) fn authenticated(&self) -> bool {
        let mut state = self.gate.state.lock().expect("never poisoned");
        if state.unauthenticated.remove(&self.id).is_none() {
            return false;
        }
        if let Some(counts) = state.sources.get_mut(&self.source) {
            counts.unauthenticated -= 1;
        }
        true
    }

    /// Whether the connection is still waiting to authenticate.
    pub(crate) fn is_unauthenticated(&self) -> bool {
        let state = self.gate.state.lock().expect("never poisoned");
        state.unauthenticated.contains_key(&self.id)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.gate.state.lock().expect("never poisoned");
        state.open -= 1;
        let was_unauthenticated = state.unauthenticated.remove(&self.id).is_some();
        if let Some(counts) = state.sources.get_mut(&self.source) {
            counts.open -= 1;
            if was_unauthenticated {
                counts.unauthenticated -= 1;
            }
            if counts.open == 0 {
                state.sources.remove(&self.source);
            }
        }
    }
}

/// A connection's stream that fails once `cut` fires: how the gateway closes a connection
/// it has handed to russh (authentication deadline, eviction, shutdown) whatever the session
/// is waiting for.
pub(crate) struct CutStream<S> {
    inner: S,
    cut: CancellationToken,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<S> CutStream<S> {
    pub(crate) fn new(inner: S, cut: CancellationToken) -> CutStream<S> {
        CutStream {
            inner,
            cancelled: Box::pin(cut.clone().cancelled_owned()),
            cut,
        }
    }

    /// `Some(error)` once the connection is cut; otherwise registers for the wake-up.
    fn check(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.cut.is_cancelled() || self.cancelled.as_mut().poll(cx).is_ready() {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the gateway closed the connection",
            ));
        }
        None
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CutStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(err) = this.check(cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CutStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(err) = this.check(cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(err) = this.check(cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    fn gate() -> Arc<Gate> {
        Gate::new(ConnectionLimits {
            max_connections: 6,
            max_unauthenticated: 3,
            max_per_source: 4,
            max_unauthenticated_per_source: 2,
            ..ConnectionLimits::default()
        })
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_source_over_its_limits_is_refused() {
        let gate = gate();
        let a1 = gate.admit(ip(1), CancellationToken::new()).unwrap();
        let a2 = gate.admit(ip(1), CancellationToken::new()).unwrap();
        assert_eq!(
            gate.admit(ip(1), CancellationToken::new()).unwrap_err(),
            Refusal::SourceUnauthenticatedFull
        );
        assert!(a1.authenticated());
        let a3 = gate.admit(ip(1), CancellationToken::new()).unwrap();
        assert!(a3.authenticated());
        let _a4 = gate.admit(ip(1), CancellationToken::new()).unwrap();
        assert_eq!(
            gate.admit(ip(1), CancellationToken::new()).unwrap_err(),
            Refusal::SourceFull
        );
        // Another source is not affected.
        gate.admit(ip(2), CancellationToken::new()).unwrap();
        drop(a2);
        gate.admit(ip(1), CancellationToken::new())
            .expect("a closed connection gives its place back");
    }

    #[test]
    fn the_oldest_unauthenticated_connection_makes_room() {
        let gate = gate();
        let cuts: Vec<CancellationToken> = (0..4).map(|_| CancellationToken::new()).collect();
        let slots: Vec<Slot> = cuts
            .iter()
            .enumerate()
            .map(|(i, cut)| gate.admit(ip(i as u8), cut.clone()).unwrap())
            .collect();
        let cut: Vec<bool> = cuts.iter().map(CancellationToken::is_cancelled).collect();
        expect!["[true, false, false, false]"].assert_eq(&format!("{cut:?}"));
        assert!(!slots[0].authenticated(), "evicted: it cannot authenticate");
        assert!(!slots[0].is_unauthenticated());
        assert_eq!(
            gate.counts(),
            (4, 3),
            "evicted but not yet closed: still open"
        );
        drop(slots);
        assert_eq!(gate.counts(), (0, 0));
    }

    #[test]
    fn authenticated_connections_are_never_evicted_and_the_total_is_kept() {
        let gate = gate();
        let mut kept = Vec::new();
        for i in 0..6 {
            let cut = CancellationToken::new();
            let slot = gate.admit(ip(i), cut.clone()).unwrap();
            assert!(slot.authenticated());
            kept.push((slot, cut));
        }
        assert_eq!(
            gate.admit(ip(9), CancellationToken::new()).unwrap_err(),
            Refusal::Full
        );
        assert!(kept.iter().all(|(_, cut)| !cut.is_cancelled()));
        kept.pop();
        let cut = CancellationToken::new();
        let waiting = gate.admit(ip(9), cut.clone()).unwrap();
        // Full again: the unauthenticated one is evicted, and the newcomer still waits for
        // its descriptor to be given back.
        assert_eq!(
            gate.admit(ip(10), CancellationToken::new()).unwrap_err(),
            Refusal::Full
        );
        assert!(cut.is_cancelled());
        drop(waiting);
        gate.admit(ip(10), CancellationToken::new()).unwrap();
    }

    #[test]
    fn ipv6_sources_are_counted_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(c));
        assert_eq!(Source::of(mapped), Source::of(ip(1)));
        assert_ne!(Source::of("::a00:1".parse().unwrap()), Source::of(ip(1)));
    }
}
