//! Store writes that must outlast a store restarting under them.

use crate::timing;
use tracing::warn;

/// Runs a store write until it succeeds, for up to about
/// [`timing::STORE_RETRY_FOR`] (the store may be restarting); gives up at
/// once on an error that trying again cannot help. Only for writes that are
/// safe to repeat.
pub(crate) async fn retry_store<T, F, Fut>(
    op: &str,
    mut f: F,
) -> Result<T, gridiron_store::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, gridiron_store::StoreError>>,
{
    let mut delay = timing::STORE_RETRY_FIRST;
    let deadline = tokio::time::Instant::now() + timing::STORE_RETRY_FOR;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if !e.retryable() || tokio::time::Instant::now() + delay > deadline => {
                warn!(op, error = %e, "store write failed; giving up");
                return Err(e);
            }
            Err(e) => {
                warn!(op, error = %e, "store write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(timing::STORE_RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridiron_store::{ErrorKind, StoreError};
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_store_that_comes_back_gets_the_write() {
        let calls = AtomicU32::new(0);
        let r = retry_store("t", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(StoreError::new("t", ErrorKind::Unavailable, "restarting"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_write_is_not_repeated() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry_store("t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::new("t", ErrorKind::Failed, "bad script"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_stays_away_is_given_up_on() {
        let r: Result<(), _> = retry_store("t", || async {
            Err(StoreError::new("t", ErrorKind::Unavailable, "down"))
        })
        .await;
        assert!(r.is_err());
    }
}
