//! The requests of this grid waiting for a slot, as the control plane lists
//! and cancels them (the slots queue itself only knows tickets).

use crate::api::queue::QueueEntry;
use gridiron_store::now_ms;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// One waiting request.
struct Entry {
    id: String,
    browser: String,
    owner: Option<String>,
    since: i64,
    /// Told when an operator cancels the request.
    cancel: oneshot::Sender<()>,
}

/// The waiting requests, in arrival order.
#[derive(Default, Clone)]
pub(crate) struct WaitList(Arc<Mutex<Vec<Entry>>>);

/// A request's place in the list while it may wait; leaves the list when dropped.
pub(crate) struct Place {
    list: WaitList,
    /// The request's id.
    pub(crate) id: String,
    /// Put in the list once the request has to wait.
    pending: Option<Entry>,
}

impl WaitList {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a request of `owner` for `browser`, not yet listed, and
    /// what resolves when an operator cancels the request.
    pub(crate) fn place(
        &self,
        browser: &str,
        owner: Option<String>,
    ) -> (Place, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let place = Place {
            list: self.clone(),
            id: id.clone(),
            pending: Some(Entry {
                id,
                browser: browser.to_string(),
                owner,
                since: now_ms(),
                cancel: tx,
            }),
        };
        (place, rx)
    }

    /// The waiting requests, first come first.
    pub(crate) fn entries(&self) -> Vec<QueueEntry> {
        let now = now_ms();
        self.lock()
            .iter()
            .enumerate()
            .map(|(i, e)| QueueEntry {
                id: e.id.clone(),
                position: i + 1,
                waited_ms: (now - e.since).max(0),
                browser: e.browser.clone(),
                owner: e.owner.clone(),
                pool: None,
            })
            .collect()
    }

    /// Cancels request `id`; `false` if it is not waiting.
    pub(crate) fn cancel(&self, id: &str) -> bool {
        let mut list = self.lock();
        let Some(i) = list.iter().position(|e| e.id == id) else {
            return false;
        };
        list.remove(i).cancel.send(()).is_ok()
    }
}

impl Place {
    /// Lists the request: it waits from now on.
    pub(crate) fn listed(&mut self) {
        if let Some(e) = self.pending.take() {
            self.list.lock().push(e);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let id = &self.id;
        self.list.lock().retain(|e| &e.id != id);
    }
}
