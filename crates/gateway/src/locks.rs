//! One push per app at a time: a second push waits, up to a bound, for the first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

/// Per-app push locks. An entry lives as long as someone holds or waits for it.
#[derive(Debug, Default)]
pub(crate) struct AppLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held for the whole push; dropping it lets the next push in.
#[derive(Debug)]
pub(crate) struct PushGuard {
    _guard: OwnedMutexGuard<()>,
}

/// The lock was taken; [`Busy::wait`] waits for it.
#[derive(Debug)]
pub(crate) struct Busy {
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl AppLocks {
    /// Takes the app's lock if it is free.
    pub(crate) fn try_acquire(&self, app: &str) -> Result<PushGuard, Busy> {
        let lock = {
            let mut locks = self.locks.lock().expect("the lock map is never poisoned");
            // Guards and waiters hold a clone; an entry with none is free to drop.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(app.to_owned()).or_default())
        };
        match Arc::clone(&lock).try_lock_owned() {
            Ok(guard) => Ok(PushGuard { _guard: guard }),
            Err(_) => Err(Busy { lock }),
        }
    }
}

impl Busy {
    /// Waits up to `limit` for the lock; `None` when the wait runs out.
    pub(crate) async fn wait(self, limit: Duration) -> Option<PushGuard> {
        let guard = tokio::time::timeout(limit, self.lock.lock_owned())
            .await
            .ok()?;
        Some(PushGuard { _guard: guard })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_second_push_waits_then_gives_up() {
        let locks = AppLocks::default();
        let first = locks.try_acquire("demo").unwrap();
        let busy = locks.try_acquire("demo").unwrap_err();
        assert!(
            busy.wait(Duration::from_secs(5)).await.is_none(),
            "gave up after the limit"
        );
        // Another app is not held up.
        assert!(locks.try_acquire("other").is_ok());
        // A waiter gets the lock as soon as it is released.
        let busy = locks.try_acquire("demo").unwrap_err();
        let waiter = tokio::spawn(busy.wait(Duration::from_secs(60)));
        drop(first);
        assert!(waiter.await.unwrap().is_some());
    }
}
