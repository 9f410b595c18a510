//! Slots with a waiting line: the async wrapper around the pure [`SlotQueue`].
//!
//! A waiter that is dropped (its client left, or it timed out) leaves the
//! line; a slot granted at that very moment is handed on, never lost.

use gridiron_domain::queue::{Admission, Refusal, SlotQueue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Why no slot was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    /// Refused without waiting.
    Refused(Refusal),
    /// Waited the whole queue timeout.
    TimedOut,
    /// The grid began shutting down while waiting.
    Closed,
}

struct Inner {
    queue: SlotQueue<u64>,
    waiters: HashMap<u64, oneshot::Sender<(usize, String)>>,
    /// Slot numbers not in use, so status can name which slot runs what.
    free_ids: Vec<usize>,
    next_ticket: u64,
    /// Requests between making room and asking for their slot: no slot is
    /// taken ahead of demand meanwhile (see [`Slots::try_acquire`]).
    arriving: usize,
}

/// A fixed set of slots shared by all sessions.
pub struct Slots {
    inner: Mutex<Inner>,
}

/// A held slot; dropping it returns the slot (to the next waiter, if any).
pub struct SlotPermit {
    slots: Arc<Slots>,
    /// Which slot this is, `0..capacity`.
    pub index: usize,
    /// The group (API key name, `""` for none) holding it.
    group: String,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        self.slots.give_back(self.index, &self.group);
    }
}

impl Slots {
    /// `capacity` slots and a line of at most `max_queue`.
    pub fn new(capacity: usize, max_queue: usize) -> Arc<Self> {
        Arc::new(Slots {
            inner: Mutex::new(Inner {
                queue: SlotQueue::new(capacity, max_queue),
                waiters: HashMap::new(),
                free_ids: (0..capacity).rev().collect(),
                next_ticket: 0,
                arriving: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot, waiting in line up to `timeout`. `on_queued` runs once if
    /// the request has to wait.
    #[cfg(test)]
    pub async fn acquire(
        self: &Arc<Self>,
        timeout: Duration,
        on_queued: impl FnOnce(usize),
    ) -> Result<SlotPermit, NoSlot> {
        self.acquire_as("", None, timeout, on_queued).await
    }

    /// Takes a slot for `group` (an API key), which may hold at most `limit`
    /// at once; groups with waiters are served in turn.
    pub async fn acquire_as(
        self: &Arc<Self>,
        group: &str,
        limit: Option<usize>,
        timeout: Duration,
        on_queued: impl FnOnce(usize),
    ) -> Result<SlotPermit, NoSlot> {
        let rx = {
            let mut inner = self.lock();
            let ticket = inner.next_ticket;
            inner.next_ticket += 1;
            match inner.queue.request_in(ticket, group, limit) {
                Admission::Granted => {
                    let index = inner.free_ids.pop().unwrap_or(0);
                    return Ok(SlotPermit {
                        slots: self.clone(),
                        index,
                        group: group.to_string(),
                    });
                }
                Admission::Refused(r) => return Err(NoSlot::Refused(r)),
                Admission::Queued { position } => {
                    let (tx, rx) = oneshot::channel();
                    inner.waiters.insert(ticket, tx);
                    let waiter = Waiter {
                        slots: self.clone(),
                        ticket,
                        rx,
                        done: false,
                    };
                    (waiter, position)
                }
            }
        };
        // Outside the lock: the callback may give slots back (warm sessions make way).
        let (mut waiter, position) = rx;
        on_queued(position);
        match tokio::time::timeout(timeout, &mut waiter.rx).await {
            Ok(Ok((index, group))) => {
                waiter.done = true;
                Ok(SlotPermit {
                    slots: self.clone(),
                    index,
                    group,
                })
            }
            Ok(Err(_)) => Err(NoSlot::Closed),
            Err(_) => Err(NoSlot::TimedOut),
        }
    }

    /// Takes a free slot for `group` only if nobody who could take it is
    /// waiting or arriving; never queues.
    pub fn try_acquire(self: &Arc<Self>, group: &str) -> Option<SlotPermit> {
        let mut inner = self.lock();
        if !inner.queue.ready() || inner.arriving > 0 {
            return None;
        }
        let ticket = inner.next_ticket;
        inner.next_ticket += 1;
        match inner.queue.request_in(ticket, group, None) {
            Admission::Granted => {
                let index = inner.free_ids.pop().unwrap_or(0);
                Some(SlotPermit {
                    slots: self.clone(),
                    index,
                    group: group.to_string(),
                })
            }
            Admission::Queued { .. } => {
                inner.queue.cancel(&ticket);
                None
            }
            Admission::Refused(_) => None,
        }
    }

    /// Marks a request on its way to a slot until the guard is dropped: a
    /// slot freed for it meanwhile is not taken by [`Slots::try_acquire`].
    pub fn arrival(self: &Arc<Self>) -> Arrival {
        self.lock().arriving += 1;
        Arrival(self.clone())
    }

    fn give_back(&self, index: usize, group: &str) {
        Self::release(&mut self.lock(), index, group);
    }

    /// Returns one slot held by `group`: to the next waiter in turn still
    /// there, else to the pool.
    fn release(inner: &mut Inner, index: usize, group: &str) {
        let mut from = group.to_string();
        loop {
            match inner.queue.release(&from) {
                None => {
                    inner.free_ids.push(index);
                    return;
                }
                Some((ticket, to)) => {
                    if let Some(tx) = inner.waiters.remove(&ticket) {
                        if tx.send((index, to.clone())).is_ok() {
                            return;
                        }
                    }
                    // That waiter vanished: offer the same slot to the next one
                    // (the queue counted it as `to`'s, so `to` gives it back).
                    from = to;
                }
            }
        }
    }

    /// Refuses new requests and fails everyone waiting.
    pub fn close(&self) {
        let mut inner = self.lock();
        for ticket in inner.queue.close() {
            inner.waiters.remove(&ticket);
        }
    }

    /// (free, capacity, waiting, ready)
    pub fn snapshot(&self) -> (usize, usize, usize, bool) {
        let inner = self.lock();
        (
            inner.queue.free(),
            inner.queue.capacity(),
            inner.queue.waiting(),
            inner.queue.ready(),
        )
    }
}

/// A request on its way to a slot (see [`Slots::arrival`]).
pub struct Arrival(Arc<Slots>);

impl Drop for Arrival {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.arriving = inner.arriving.saturating_sub(1);
    }
}

struct Waiter {
    slots: Arc<Slots>,
    ticket: u64,
    rx: oneshot::Receiver<(usize, String)>,
    done: bool,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut inner = self.slots.lock();
        if inner.queue.cancel(&self.ticket) {
            inner.waiters.remove(&self.ticket);
            return;
        }
        // Not waiting any more: a slot may have been sent just now. Return it.
        if let Ok((index, group)) = self.rx.try_recv() {
            Slots::release(&mut inner, index, &group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn try_acquire_never_queues_or_jumps_the_line() {
        let slots = Slots::new(2, 10);
        let a = slots.try_acquire("warm").expect("a free slot");
        let b = slots.acquire(LONG, |_| {}).await.unwrap();
        assert!(slots.try_acquire("warm").is_none(), "no slot is free");
        assert_eq!(slots.snapshot().2, 0, "nothing was queued");
        let waiter = {
            let s = slots.clone();
            tokio::spawn(async move { s.acquire(LONG, |_| {}).await })
        };
        while slots.snapshot().2 == 0 {
            tokio::task::yield_now().await;
        }
        drop(b);
        let _held = waiter.await.unwrap().expect("the waiter got the slot");
        assert!(slots.try_acquire("warm").is_none());
        drop(a);
        let arriving = slots.arrival();
        assert!(
            slots.try_acquire("warm").is_none(),
            "a request is on its way"
        );
        drop(arriving);
        assert!(slots.try_acquire("warm").is_some());
    }

    #[tokio::test]
    async fn waiters_are_served_in_order() {
        let slots = Slots::new(1, 10);
        let first = slots.acquire(LONG, |_| {}).await.unwrap();
        let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..3 {
            let s = slots.clone();
            let tx = order_tx.clone();
            tokio::spawn(async move {
                let p = s.acquire(LONG, |_| {}).await.unwrap();
                tx.send(i).unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(p);
            });
            // Let each one join the line before the next.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(slots.snapshot().2, 3);
        drop(first);
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(order_rx.recv().await.unwrap());
        }
        assert_eq!(got, vec![0, 1, 2]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(slots.snapshot(), (1, 1, 0, true));
    }

    #[tokio::test]
    async fn timeout_and_bound() {
        let slots = Slots::new(1, 1);
        let _held = slots.acquire(LONG, |_| {}).await.unwrap();
        let s = slots.clone();
        let waiting =
            tokio::spawn(async move { s.acquire(Duration::from_millis(200), |_| {}).await.err() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = slots.acquire(LONG, |_| {}).await.err();
        assert_eq!(refused, Some(NoSlot::Refused(Refusal::QueueFull)));
        assert_eq!(waiting.await.unwrap(), Some(NoSlot::TimedOut));
        assert_eq!(slots.snapshot().2, 0, "the timed-out waiter left the line");
    }

    #[tokio::test]
    async fn a_dropped_waiter_does_not_keep_a_slot() {
        let slots = Slots::new(1, 5);
        let held = slots.acquire(LONG, |_| {}).await.unwrap();
        let s = slots.clone();
        let gone = tokio::spawn(async move { s.acquire(LONG, |_| {}).await.map(|p| p.index) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        assert_eq!(slots.snapshot(), (1, 1, 0, true));
        let again = slots.acquire(Duration::from_millis(100), |_| {}).await;
        assert!(again.is_ok());
    }

    #[tokio::test]
    async fn close_fails_waiters() {
        let slots = Slots::new(1, 5);
        let _held = slots.acquire(LONG, |_| {}).await.unwrap();
        let s = slots.clone();
        let waiting = tokio::spawn(async move { s.acquire(LONG, |_| {}).await.err() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        slots.close();
        assert_eq!(waiting.await.unwrap(), Some(NoSlot::Closed));
        assert_eq!(
            slots.acquire(LONG, |_| {}).await.err(),
            Some(NoSlot::Refused(Refusal::ShuttingDown))
        );
    }

    #[tokio::test]
    async fn a_capped_key_waits_while_another_is_served() {
        let slots = Slots::new(2, 10);
        let a1 = slots.acquire_as("a", Some(1), LONG, |_| {}).await.unwrap();
        let s = slots.clone();
        let a2 = tokio::spawn(async move { s.acquire_as("a", Some(1), LONG, |_| {}).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(slots.snapshot().2, 1, "a's second request waits");
        // b is served at once from the free slot.
        let b = slots
            .acquire_as("b", None, Duration::from_millis(100), |_| {})
            .await
            .unwrap();
        drop(b);
        assert!(!a2.is_finished(), "b's slot does not lift a's limit");
        drop(a1);
        let a2 = a2.await.unwrap().unwrap();
        drop(a2);
        assert_eq!(slots.snapshot(), (2, 2, 0, true));
    }
}
