//! One push per app at a time, across every gateway on one store: a push holds the app's
//! lease `push:<app>` in the store, renewed while it runs; a second push waits, up to a bound,
//! for it. A gateway that dies lets its leases lapse.

use std::time::Duration;

use domain::AppName;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// How long a push lease lasts unless renewed (every third of it).
pub(crate) const PUSH_LEASE: Duration = Duration::from_secs(30);

/// How often a waiting push looks again when the store announced nothing.
const POLL: Duration = Duration::from_millis(250);

/// The store's name of an app's push lease.
pub(crate) fn lease_name(app: &AppName) -> String {
    format!("push:{app}")
}

/// Held for the whole push; dropping it gives the lease up, letting the next push in.
#[derive(Debug)]
pub(crate) struct PushGuard {
    store: store::Store,
    name: String,
    holder: String,
    renewing: JoinHandle<()>,
    /// Where giving the lease up runs: the gateway waits for it at shutdown.
    tasks: TaskTracker,
}

impl Drop for PushGuard {
    fn drop(&mut self) {
        self.renewing.abort();
        let (store, name, holder) = (self.store.clone(), self.name.clone(), self.holder.clone());
        self.tasks.spawn(async move {
            if let Err(err) = store.release_lease(&name, &holder).await {
                tracing::warn!(lease = %name, error = %err, "cannot give up a push lease; it lapses on its own");
            }
        });
    }
}

/// Takes the app's push lease for `holder` if it is free: `Ok(None)` when another push has it.
/// The lease is given back in a task of `tasks`.
pub(crate) async fn try_acquire(
    store: &store::Store,
    tasks: &TaskTracker,
    app: &AppName,
    holder: &str,
) -> Result<Option<PushGuard>, store::Error> {
    let name = lease_name(app);
    if !store.acquire_lease(&name, holder, PUSH_LEASE).await? {
        // A gateway of this host that has exited is pushing nothing: its lease is taken over.
        let taken = match store.lease_holder(&name).await? {
            Some(current) if store::holder_gone(&current) => {
                store
                    .take_lease_from(&name, &current, holder, PUSH_LEASE)
                    .await?
            }
            _ => false,
        };
        if !taken {
            return Ok(None);
        }
    }
    let renewing = {
        let (store, name, holder) = (store.clone(), name.clone(), holder.to_owned());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PUSH_LEASE / 3).await;
                match store.acquire_lease(&name, &holder, PUSH_LEASE).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(lease = %name, "lost a push lease: another push may run at once");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(lease = %name, error = %err, "cannot renew a push lease")
                    }
                }
            }
        })
    };
    Ok(Some(PushGuard {
        store: store.clone(),
        name,
        holder: holder.to_owned(),
        renewing,
        tasks: tasks.clone(),
    }))
}

/// Waits up to `limit` for the app's push lease; `Ok(None)` when the wait runs out.
pub(crate) async fn wait(
    store: &store::Store,
    tasks: &TaskTracker,
    app: &AppName,
    holder: &str,
    limit: Duration,
) -> Result<Option<PushGuard>, store::Error> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut changes = store.changes();
    loop {
        changes.borrow_and_update();
        if let Some(guard) = try_acquire(store, tasks, app, holder).await? {
            return Ok(Some(guard));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let _ = tokio::time::timeout((deadline - now).min(POLL), changes.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_push_waits_then_gives_up_and_gets_in_once_the_first_ends() {
        let db = test_support::TestDatabase::new(test_support::Backend::Sqlite)
            .await
            .unwrap();
        let store = store::Store::open(&db.url).await.unwrap();
        let tasks = TaskTracker::new();
        let demo = AppName::parse("demo").unwrap();
        let first = try_acquire(&store, &tasks, &demo, "one")
            .await
            .unwrap()
            .unwrap();
        assert!(
            try_acquire(&store, &tasks, &demo, "two")
                .await
                .unwrap()
                .is_none()
        );
        let waited = wait(&store, &tasks, &demo, "two", Duration::from_millis(300)).await;
        assert!(waited.unwrap().is_none(), "gave up after the limit");
        // Another app is not held up.
        let other = AppName::parse("other").unwrap();
        assert!(
            try_acquire(&store, &tasks, &other, "two")
                .await
                .unwrap()
                .is_some()
        );
        // A waiter gets in as soon as the first gives the lease up.
        let waiter = {
            let store = store.clone();
            let demo = demo.clone();
            tokio::spawn(async move {
                wait(&store, &tasks, &demo, "two", Duration::from_secs(60))
                    .await
                    .unwrap()
                    .is_some()
            })
        };
        drop(first);
        assert!(waiter.await.unwrap());
    }
}
