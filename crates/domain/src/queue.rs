//! Scheduling policy: a fixed number of slots and a bounded line of waiters,
//! fair between groups (API keys), each group optionally capped.
//!
//! Pure bookkeeping; the server wraps it with channels and timers.

use std::collections::{HashMap, VecDeque};

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

/// Slots and the lines of requests waiting for one: one line per group (an
/// API key; `""` for requests without one), served round-robin, so one
/// group's many waiters cannot starve another's one. A group may have a
/// limit of slots it holds at once; its waiters beyond it stay in line while
/// other groups are served.
#[derive(Debug)]
pub struct SlotQueue<T> {
    capacity: usize,
    free: usize,
    max_queue: usize,
    /// Groups with waiters, in the order they are served next.
    lines: VecDeque<(String, VecDeque<T>)>,
    /// Slots held by each group (only groups holding some).
    held: HashMap<String, usize>,
    /// The last limit each waiting or holding group asked with.
    limits: HashMap<String, usize>,
    waiting: usize,
    accepting: bool,
}

impl<T: PartialEq> SlotQueue<T> {
    /// `capacity` slots, at most `max_queue` waiters.
    pub fn new(capacity: usize, max_queue: usize) -> Self {
        SlotQueue {
            capacity,
            free: capacity,
            max_queue,
            lines: VecDeque::new(),
            held: HashMap::new(),
            limits: HashMap::new(),
            waiting: 0,
            accepting: true,
        }
    }

    /// Admits a request of no group, with no limit of its own.
    pub fn request(&mut self, ticket: T) -> Admission {
        self.request_in(ticket, "", None)
    }

    /// Admits a request of `group`, which may hold at most `limit` slots: a
    /// free slot goes to it only if no waiter that could take one is before
    /// it, and its group is under its limit.
    pub fn request_in(&mut self, ticket: T, group: &str, limit: Option<usize>) -> Admission {
        if !self.accepting {
            return Admission::Refused(Refusal::ShuttingDown);
        }
        match limit {
            Some(l) => self.limits.insert(group.to_string(), l),
            None => self.limits.remove(group),
        };
        if self.free > 0 && !self.someone_eligible() && self.under_limit(group) {
            self.free -= 1;
            *self.held.entry(group.to_string()).or_default() += 1;
            return Admission::Granted;
        }
        if self.waiting >= self.max_queue {
            return Admission::Refused(Refusal::QueueFull);
        }
        self.waiting += 1;
        match self.lines.iter_mut().find(|(g, _)| g == group) {
            Some((_, line)) => line.push_back(ticket),
            None => self
                .lines
                .push_back((group.to_string(), VecDeque::from([ticket]))),
        }
        Admission::Queued {
            position: self.waiting,
        }
    }

    fn under_limit(&self, group: &str) -> bool {
        let held = self.held.get(group).copied().unwrap_or(0);
        self.limits.get(group).is_none_or(|l| held < *l)
    }

    /// Whether some waiter could take a slot now (its group is under its limit).
    fn someone_eligible(&self) -> bool {
        self.lines.iter().any(|(g, _)| self.under_limit(g))
    }

    /// Removes a waiter (timed out, or its client left). `false` if it was not waiting,
    /// which means a slot was already handed to it.
    pub fn cancel(&mut self, ticket: &T) -> bool {
        for i in 0..self.lines.len() {
            let line = &mut self.lines[i].1;
            if let Some(at) = line.iter().position(|t| t == ticket) {
                line.remove(at);
                if line.is_empty() {
                    self.lines.remove(i);
                }
                self.waiting -= 1;
                return true;
            }
        }
        false
    }

    /// A slot held by `group` comes back. Returns the waiter that now owns
    /// it, if any, and its group: the first group in turn that is under its
    /// limit, which then goes to the back of the turn.
    pub fn release(&mut self, group: &str) -> Option<(T, String)> {
        if let Some(n) = self.held.get_mut(group) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.held.remove(group);
            }
        }
        let turn = (0..self.lines.len()).find(|&i| self.under_limit(&self.lines[i].0));
        let Some(i) = turn else {
            self.free = (self.free + 1).min(self.capacity);
            self.forget_limit(group);
            return None;
        };
        let (g, mut line) = self.lines.remove(i).expect("index in range");
        let t = line.pop_front().expect("lines are never empty");
        self.waiting -= 1;
        *self.held.entry(g.clone()).or_default() += 1;
        if !line.is_empty() {
            self.lines.push_back((g.clone(), line));
        }
        self.forget_limit(group);
        Some((t, g))
    }

    /// Drops the limit of a group that neither holds nor waits for a slot.
    fn forget_limit(&mut self, group: &str) {
        if !self.held.contains_key(group) && !self.lines.iter().any(|(g, _)| g == group) {
            self.limits.remove(group);
        }
    }

    /// Stops admitting and returns every waiter, to be failed by the caller.
    pub fn close(&mut self) -> Vec<T> {
        self.accepting = false;
        self.waiting = 0;
        self.lines.drain(..).flat_map(|(_, l)| l).collect()
    }

    /// Whether a new request (of a group under its limit) would get a slot right now.
    pub fn ready(&self) -> bool {
        self.accepting && self.free > 0 && !self.someone_eligible()
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
        self.waiting
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
        assert_eq!(q.release(""), Some((3, String::new())));
        assert_eq!(q.release(""), Some((4, String::new())));
        assert_eq!(q.release(""), None);
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
        assert_eq!(q.release(""), Some((2, String::new())));
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
        assert_eq!(q.release(""), Some((3, String::new())));
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
        q.release("");
        q.release("");
        assert_eq!(q.free(), 1);
    }

    #[test]
    fn groups_are_served_in_turn() {
        let mut q = SlotQueue::new(1, 100);
        assert_eq!(q.request_in(0, "a", None), Admission::Granted);
        for t in 1..=5 {
            q.request_in(t, "a", None);
        }
        q.request_in(10, "b", None);
        q.request_in(11, "b", None);
        // b's first request is served right after a's next, not after all of a's.
        let order: Vec<u32> = std::iter::from_fn(|| q.release("").map(|(t, _)| t))
            .take(7)
            .collect();
        assert_eq!(order, vec![1, 10, 2, 11, 3, 4, 5]);
    }

    #[test]
    fn a_capped_group_waits_while_others_are_served() {
        let mut q = SlotQueue::new(3, 100);
        assert_eq!(q.request_in(1, "a", Some(1)), Admission::Granted);
        // Slots are free, but a holds its one: it waits.
        assert_eq!(
            q.request_in(2, "a", Some(1)),
            Admission::Queued { position: 1 }
        );
        assert!(
            q.ready(),
            "a waiter that may not take a slot does not block others"
        );
        assert_eq!(q.request_in(3, "b", None), Admission::Granted);
        assert_eq!(q.free(), 1);
        // b's slot coming back does not go to a (still at its limit).
        assert_eq!(q.release("b"), None);
        assert_eq!(q.free(), 2);
        // a's own slot coming back does.
        assert_eq!(q.release("a"), Some((2, "a".to_string())));
        assert_eq!(q.free(), 2);
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn cancel_and_close_cover_every_line() {
        let mut q = SlotQueue::new(1, 100);
        q.request_in(1, "a", None);
        q.request_in(2, "a", None);
        q.request_in(3, "b", None);
        q.request_in(4, "b", None);
        assert!(q.cancel(&3));
        assert_eq!(q.waiting(), 2);
        let mut rest = q.close();
        rest.sort();
        assert_eq!(rest, vec![2, 4]);
        assert_eq!(q.waiting(), 0);
    }
}
