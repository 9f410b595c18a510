//! Scheduling policy: a fixed number of slots and a bounded FIFO of waiters.
//!
//! Pure bookkeeping; the server wraps it with channels and timers.

use std::collections::VecDeque;

/// Why a request was turned away without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The queue already holds its maximum number of waiters.
    QueueFull,
    /// The grid is shutting down.
    ShuttingDown,
}

/// What happens to a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A slot is reserved for it now.
    Granted,
    /// It waits; `position` counts from 1.
    Queued {
        /// Place in line, 1 = next.
        position: usize,
    },
    /// It is refused at once.
    Refused(Refusal),
}

/// Slots and the line of requests waiting for one.
#[derive(Debug)]
pub struct SlotQueue<T> {
    capacity: usize,
    free: usize,
    max_queue: usize,
    waiting: VecDeque<T>,
    accepting: bool,
}

impl<T: PartialEq> SlotQueue<T> {
    /// `capacity` slots, at most `max_queue` waiters.
    pub fn new(capacity: usize, max_queue: usize) -> Self {
        SlotQueue {
            capacity,
            free: capacity,
            max_queue,
            waiting: VecDeque::new(),
            accepting: true,
        }
    }

    /// Admits a request: a free slot goes to it only if nobody waits before it.
    pub fn request(&mut self, ticket: T) -> Admission {
        if !self.accepting {
            return Admission::Refused(Refusal::ShuttingDown);
        }
        if self.free > 0 && self.waiting.is_empty() {
            self.free -= 1;
            return Admission::Granted;
        }
        if self.waiting.len() >= self.max_queue {
            return Admission::Refused(Refusal::QueueFull);
        }
        self.waiting.push_back(ticket);
        Admission::Queued {
            position: self.waiting.len(),
        }
    }

    /// Removes a waiter (timed out, or its client left). `false` if it was not waiting,
    /// which means a slot was already handed to it.
    pub fn cancel(&mut self, ticket: &T) -> bool {
        match self.waiting.iter().position(|t| t == ticket) {
            Some(i) => {
                self.waiting.remove(i);
                true
            }
            None => false,
        }
    }

    /// A slot comes back. Returns the waiter that now owns it, if any.
    pub fn release(&mut self) -> Option<T> {
        match self.waiting.pop_front() {
            Some(t) => Some(t),
            None => {
                self.free = (self.free + 1).min(self.capacity);
                None
            }
        }
    }

    /// Stops admitting and returns every waiter, to be failed by the caller.
    pub fn close(&mut self) -> Vec<T> {
        self.accepting = false;
        self.waiting.drain(..).collect()
    }

    /// Whether a new request would get a slot right now.
    pub fn ready(&self) -> bool {
        self.accepting && self.free > 0 && self.waiting.is_empty()
    }

    /// Free slots.
    pub fn free(&self) -> usize {
        self.free
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Requests waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_until_full_then_queues_fifo() {
        let mut q = SlotQueue::new(2, 10);
        assert_eq!(q.request(1), Admission::Granted);
        assert_eq!(q.request(2), Admission::Granted);
        assert!(!q.ready());
        assert_eq!(q.request(3), Admission::Queued { position: 1 });
        assert_eq!(q.request(4), Admission::Queued { position: 2 });
        assert_eq!(q.release(), Some(3));
        assert_eq!(q.release(), Some(4));
        assert_eq!(q.release(), None);
        assert_eq!(q.free(), 1);
        assert!(q.ready());
    }

    #[test]
    fn queue_bound_refuses() {
        let mut q = SlotQueue::new(1, 1);
        assert_eq!(q.request(1), Admission::Granted);
        assert_eq!(q.request(2), Admission::Queued { position: 1 });
        assert_eq!(q.request(3), Admission::Refused(Refusal::QueueFull));
    }

    #[test]
    fn newcomer_does_not_overtake_waiters() {
        let mut q = SlotQueue::new(1, 5);
        assert_eq!(q.request(1), Admission::Granted);
        assert_eq!(q.request(2), Admission::Queued { position: 1 });
        // The slot goes to 2 directly; a newcomer must still queue.
        assert_eq!(q.release(), Some(2));
        assert_eq!(q.request(3), Admission::Queued { position: 1 });
    }

    #[test]
    fn cancel_removes_only_waiters() {
        let mut q = SlotQueue::new(1, 5);
        q.request(1);
        q.request(2);
        q.request(3);
        assert!(q.cancel(&2));
        assert!(!q.cancel(&2));
        assert!(!q.cancel(&1), "1 holds a slot, it is not waiting");
        assert_eq!(q.release(), Some(3));
    }

    #[test]
    fn close_refuses_and_drains() {
        let mut q = SlotQueue::new(1, 5);
        q.request(1);
        q.request(2);
        assert_eq!(q.close(), vec![2]);
        assert_eq!(q.request(9), Admission::Refused(Refusal::ShuttingDown));
        assert!(!q.ready());
    }

    #[test]
    fn free_never_exceeds_capacity() {
        let mut q: SlotQueue<u32> = SlotQueue::new(1, 1);
        q.release();
        q.release();
        assert_eq!(q.free(), 1);
    }
}
