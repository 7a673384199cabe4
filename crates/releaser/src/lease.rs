//! The local runtime's one active release manager: whoever holds the store's lease
//! [`LOCAL_RUNTIME`] runs the apps (and serves the router); the others stand by and take over
//! when it lapses — at once when its holder is a process on this machine that has exited.

use std::time::Duration;

use store::Store;
use tokio_util::sync::CancellationToken;

/// The lease the active release manager of the local runtime holds.
pub const LOCAL_RUNTIME: &str = "runtime:local";

pub use store::holder_name;

/// A lease held and renewed in the background. `lost` fires if it could not be renewed:
/// another may have taken over, and the holder must stop.
#[derive(Debug)]
pub struct ActiveLease {
    pub lost: CancellationToken,
    renewing: tokio::task::JoinHandle<()>,
    store: Store,
    name: String,
    holder: String,
}

impl ActiveLease {
    /// Waits until `holder` holds the lease `name` (taking it over from a holder on this host
    /// that has exited), or `shutdown` fires (`None`). `standing_by` is called once if it has
    /// to wait.
    pub async fn acquire(
        store: &Store,
        name: &str,
        holder: &str,
        lease: Duration,
        shutdown: &CancellationToken,
        standing_by: impl FnOnce(&str),
    ) -> Result<Option<ActiveLease>, store::Error> {
        let mut standing_by = Some(standing_by);
        let mut changes = store.changes();
        loop {
            changes.borrow_and_update();
            if store.acquire_lease(name, holder, lease).await? {
                break;
            }
            if let Some(current) = store.lease_holder(name).await?
                && store::holder_gone(&current)
                && store.take_lease_from(name, &current, holder, lease).await?
            {
                tracing::info!(from = %current, "took over from a release manager that has exited");
                break;
            }
            if let Some(say) = standing_by.take() {
                let current = store.lease_holder(name).await?.unwrap_or_default();
                say(&current);
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::timeout(lease / 4, changes.changed()) => {}
            }
        }
        let lost = CancellationToken::new();
        let renewing = {
            let (store, name, holder, lost) = (
                store.clone(),
                name.to_owned(),
                holder.to_owned(),
                lost.clone(),
            );
            tokio::spawn(async move {
                let mut last_renewed = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match store.acquire_lease(&name, &holder, lease).await {
                        Ok(true) => last_renewed = tokio::time::Instant::now(),
                        Ok(false) => {
                            tracing::error!(lease = %name, "another release manager took the lease over");
                            lost.cancel();
                            return;
                        }
                        Err(err) => {
                            tracing::warn!(lease = %name, error = %err, "cannot renew the lease");
                            if last_renewed.elapsed() >= lease {
                                lost.cancel();
                                return;
                            }
                        }
                    }
                }
            })
        };
        Ok(Some(ActiveLease {
            lost,
            renewing,
            store: store.clone(),
            name: name.to_owned(),
            holder: holder.to_owned(),
        }))
    }

    /// Gives the lease up, so a standby takes over at once.
    pub async fn release(self) {
        self.renewing.abort();
        if let Err(err) = self.store.release_lease(&self.name, &self.holder).await {
            tracing::warn!(lease = %self.name, error = %err, "cannot give the lease up; it lapses on its own");
        }
    }
}
