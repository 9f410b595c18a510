//! The life of a queued new-session request in a scaled-out grid.
//!
//! A hub enqueues a request; a node claims it, starts the session and
//! completes it with an answer; the hub takes the answer to its client. The
//! hub may cancel it, the node may be lost while starting it, the hub may be
//! lost before it delivers. Every store applies the same rules: [`step`] is the
//! one definition, and each store keeps the resulting [`Phase`] its own way.

/// A node registration that claims requests. A node that registers again
/// (after it was declared lost, or the store lost its data) gets a new
/// epoch, so work it claimed under an old registration is told apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Holder {
    /// The node's id.
    pub node: String,
    /// Its registration's epoch.
    pub epoch: u64,
}

impl Holder {
    /// The holder `node` under registration `epoch`.
    pub fn new(node: &str, epoch: u64) -> Holder {
        Holder {
            node: node.to_string(),
            epoch,
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// In the queue.
    Waiting,
    /// A node is starting its session.
    Claimed(Holder),
    /// The node answered; the hub has not taken the answer yet.
    Answered(Holder),
    /// The hub took the answer (to deliver it, or to end its session).
    Delivered(Holder),
    /// Withdrawn before it was answered.
    Cancelled {
        /// Why (`client_gone`, `queue_timeout`).
        reason: String,
    },
}

impl Phase {
    /// Whether nothing more happens to it (stores keep such records a while only).
    pub fn is_final(&self) -> bool {
        matches!(self, Phase::Delivered(_) | Phase::Cancelled { .. })
    }

    /// Short name, as stores record it.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Claimed(_) => "claimed",
            Phase::Answered(_) => "done",
            Phase::Delivered(_) => "delivered",
            Phase::Cancelled { .. } => "cancelled",
        }
    }
}

/// How the claiming node stands with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Registered and taking work (or not registered at all: a store that
    /// lost its data still lets a node finish what it claims).
    Active,
    /// Asked to drain: it claims nothing more.
    Draining,
    /// Declared lost: it must register again before it claims.
    Lost,
}

/// Something that happens to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A hub puts it (back) in the queue; a record of the same id is replaced.
    Enqueue,
    /// A node tries to take it.
    Claim {
        /// The node and its registration.
        by: Holder,
        /// How that node stands.
        standing: Standing,
        /// Whether the request's pool already runs as many sessions as it may.
        pool_full: bool,
        /// Whether the API key that asked for it already runs as many
        /// sessions as it may.
        key_full: bool,
    },
    /// A node hands over its answer.
    Complete {
        /// The node and the registration it claimed under.
        by: Holder,
        /// Whether the request's hub is still alive to deliver the answer.
        hub_alive: bool,
    },
    /// The hub gives up on it. A soft cancel (`hard: false`) leaves a
    /// request a node is starting alone.
    Cancel {
        /// Why.
        reason: String,
        /// Also withdraw it from a node that is starting it.
        hard: bool,
    },
    /// The hub takes the answer, once.
    Take,
    /// `node` was declared lost (or left): what it was starting goes back.
    NodeLost {
        /// The lost node's id (every registration of it).
        node: String,
    },
    /// The request's hub was declared lost: nobody can deliver it.
    HubLost,
}

/// Why an event does not apply; the request keeps its phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The store has no such request (it lost its data, or forgot it).
    Missing,
    /// A claim of a request no longer waiting.
    NotWaiting,
    /// A claim by a node that is draining.
    Draining,
    /// A claim by a node that was declared lost.
    NodeLost,
    /// A claim while the request's pool is full.
    PoolFull,
    /// A claim while the request's API key runs as many sessions as it may.
    KeyFull,
    /// A completion (or requeue) by a node, or registration, that does not
    /// hold the request: the claim was taken back. The node must end the
    /// session it started.
    NotHolder,
    /// A soft cancel of a request a node is starting.
    Starting,
    /// The hub takes an answer that is not there (any more).
    NotAnswered,
    /// The request already reached a final phase.
    Finished,
}

/// The request's next phase after `event`, or why the event does not apply.
/// `state` is `None` when the store has no record of the request.
pub fn step(state: Option<&Phase>, event: &Event) -> Result<Phase, Refusal> {
    use Phase::*;
    if let Event::Enqueue = event {
        return Ok(Waiting);
    }
    let state = state.ok_or(Refusal::Missing)?;
    match (event, state) {
        (Event::Enqueue, _) => Ok(Waiting),
        (Event::Claim { .. }, s) if *s != Waiting => Err(Refusal::NotWaiting),
        (Event::Claim { standing, .. }, _) if *standing == Standing::Draining => {
            Err(Refusal::Draining)
        }
        (Event::Claim { standing, .. }, _) if *standing == Standing::Lost => Err(Refusal::NodeLost),
        (
            Event::Claim {
                pool_full: true, ..
            },
            _,
        ) => Err(Refusal::PoolFull),
        (Event::Claim { key_full: true, .. }, _) => Err(Refusal::KeyFull),
        (Event::Claim { by, .. }, _) => Ok(Claimed(by.clone())),

        (Event::Complete { by, hub_alive }, Claimed(h)) if h == by => Ok(if *hub_alive {
            Answered(h.clone())
        } else {
            Cancelled {
                reason: "client_gone".into(),
            }
        }),
        // A retry whose first reply was lost is told the same again.
        (Event::Complete { by, .. }, Answered(h) | Delivered(h)) if h == by => Ok(state.clone()),
        (Event::Complete { .. }, Cancelled { .. }) => Err(Refusal::Finished),
        (Event::Complete { .. }, _) => Err(Refusal::NotHolder),

        (Event::Cancel { reason, .. }, Waiting) => Ok(Cancelled {
            reason: reason.clone(),
        }),
        (Event::Cancel { hard: false, .. }, Claimed(_)) => Err(Refusal::Starting),
        (Event::Cancel { reason, hard: true }, Claimed(_)) => Ok(Cancelled {
            reason: reason.clone(),
        }),
        // The hub takes the answer instead (to deliver it, or end its session).
        (Event::Cancel { .. }, Answered(h)) => Ok(Delivered(h.clone())),
        (Event::Cancel { .. }, Delivered(_) | Cancelled { .. }) => Err(Refusal::Finished),

        (Event::Take, Answered(h)) => Ok(Delivered(h.clone())),
        (Event::Take, _) => Err(Refusal::NotAnswered),

        (Event::NodeLost { node }, Claimed(h)) if h.node == *node => Ok(Waiting),
        (Event::NodeLost { .. }, _) => Err(Refusal::NotHolder),

        (Event::HubLost, Waiting | Claimed(_) | Answered(_)) => Ok(Cancelled {
            reason: "client_gone".into(),
        }),
        (Event::HubLost, Delivered(_) | Cancelled { .. }) => Err(Refusal::Finished),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Holder {
        Holder::new("n1", 7)
    }

    fn states() -> Vec<Option<Phase>> {
        vec![
            None,
            Some(Phase::Waiting),
            Some(Phase::Claimed(me())),
            Some(Phase::Answered(me())),
            Some(Phase::Delivered(me())),
            Some(Phase::Cancelled {
                reason: "queue_timeout".into(),
            }),
        ]
    }

    fn claim(by: Holder, standing: Standing, pool_full: bool) -> Event {
        Event::Claim {
            by,
            standing,
            pool_full,
            key_full: false,
        }
    }

    fn complete(by: Holder, hub_alive: bool) -> Event {
        Event::Complete { by, hub_alive }
    }

    fn cancel(hard: bool) -> Event {
        Event::Cancel {
            reason: "client_gone".into(),
            hard,
        }
    }

    fn cancelled() -> Phase {
        Phase::Cancelled {
            reason: "client_gone".into(),
        }
    }

    /// One row per event: the expected outcome for each of [`states`], in order.
    fn table() -> Vec<(Event, [Result<Phase, Refusal>; 6])> {
        use Phase::*;
        use Refusal::*;
        let miss = || Err(Missing);
        let other_node = Holder::new("n2", 7);
        let old_epoch = Holder::new("n1", 6);
        vec![
            (
                Event::Enqueue,
                [
                    Ok(Waiting),
                    Ok(Waiting),
                    Ok(Waiting),
                    Ok(Waiting),
                    Ok(Waiting),
                    Ok(Waiting),
                ],
            ),
            (
                claim(me(), Standing::Active, false),
                [
                    miss(),
                    Ok(Claimed(me())),
                    Err(NotWaiting),
                    Err(NotWaiting),
                    Err(NotWaiting),
                    Err(NotWaiting),
                ],
            ),
            (
                claim(me(), Standing::Draining, false),
                [
                    miss(),
                    Err(Draining),
                    Err(NotWaiting),
                    Err(NotWaiting),
                    Err(NotWaiting),
                    Err(NotWaiting),
                ],
            ),
            (
                claim(me(), Standing::Lost, false),
                [
                    miss(),
                    Err(NodeLost),
                    Err(NotWaiting),
                    Err(NotWaiting),
                    Err(NotWaiting),
                    Err(NotWaiting),
                ],
            ),
            (
                claim(me(), Standing::Active, true),
                [
                    miss(),
                    Err(PoolFull),
                    Err(NotWaiting),
                    Err(NotWaiting),
                    Err(NotWaiting),
                    Err(NotWaiting),
                ],
            ),
            (
                Event::Claim {
                    by: me(),
                    standing: Standing::Active,
                    pool_full: false,
                    key_full: true,
                },
                [
                    miss(),
                    Err(KeyFull),
                    Err(NotWaiting),
                    Err(NotWaiting),
                    Err(NotWaiting),
                    Err(NotWaiting),
                ],
            ),
            (
                complete(me(), true),
                [
                    miss(),
                    Err(NotHolder),
                    Ok(Answered(me())),
                    Ok(Answered(me())),
                    Ok(Delivered(me())),
                    Err(Finished),
                ],
            ),
            (
                complete(me(), false),
                [
                    miss(),
                    Err(NotHolder),
                    Ok(cancelled()),
                    Ok(Answered(me())),
                    Ok(Delivered(me())),
                    Err(Finished),
                ],
            ),
            (
                complete(other_node, true),
                [
                    miss(),
                    Err(NotHolder),
                    Err(NotHolder),
                    Err(NotHolder),
                    Err(NotHolder),
                    Err(Finished),
                ],
            ),
            (
                complete(old_epoch, true),
                [
                    miss(),
                    Err(NotHolder),
                    Err(NotHolder),
                    Err(NotHolder),
                    Err(NotHolder),
                    Err(Finished),
                ],
            ),
            (
                cancel(false),
                [
                    miss(),
                    Ok(cancelled()),
                    Err(Starting),
                    Ok(Delivered(me())),
                    Err(Finished),
                    Err(Finished),
                ],
            ),
            (
                cancel(true),
                [
                    miss(),
                    Ok(cancelled()),
                    Ok(cancelled()),
                    Ok(Delivered(me())),
                    Err(Finished),
                    Err(Finished),
                ],
            ),
            (
                Event::Take,
                [
                    miss(),
                    Err(NotAnswered),
                    Err(NotAnswered),
                    Ok(Delivered(me())),
                    Err(NotAnswered),
                    Err(NotAnswered),
                ],
            ),
            (
                Event::NodeLost { node: "n1".into() },
                [
                    miss(),
                    Err(NotHolder),
                    Ok(Waiting),
                    Err(NotHolder),
                    Err(NotHolder),
                    Err(NotHolder),
                ],
            ),
            (
                Event::NodeLost { node: "n2".into() },
                [
                    miss(),
                    Err(NotHolder),
                    Err(NotHolder),
                    Err(NotHolder),
                    Err(NotHolder),
                    Err(NotHolder),
                ],
            ),
            (
                Event::HubLost,
                [
                    miss(),
                    Ok(cancelled()),
                    Ok(cancelled()),
                    Ok(cancelled()),
                    Err(Finished),
                    Err(Finished),
                ],
            ),
        ]
    }

    #[test]
    fn every_event_in_every_state() {
        let states = states();
        for (event, expected) in table() {
            for (state, want) in states.iter().zip(expected) {
                assert_eq!(step(state.as_ref(), &event), want, "{event:?} in {state:?}");
            }
        }
    }

    #[test]
    fn the_table_covers_every_kind_of_event() {
        let kinds: std::collections::HashSet<_> = table()
            .iter()
            .map(|(e, _)| std::mem::discriminant(e))
            .collect();
        assert_eq!(kinds.len(), 7);
    }

    #[test]
    fn a_claim_requeued_from_a_lost_node_is_fenced_and_served_by_the_next() {
        let first = Holder::new("n1", 1);
        let again = Holder::new("n1", 2);
        let s = step(
            Some(&Phase::Waiting),
            &claim(first.clone(), Standing::Active, false),
        );
        let s = step(s.as_ref().ok(), &Event::NodeLost { node: "n1".into() }).unwrap();
        assert_eq!(s, Phase::Waiting);
        let s = step(Some(&s), &claim(again.clone(), Standing::Active, false)).unwrap();
        // The old registration finishes late: refused, its session must end.
        assert_eq!(
            step(Some(&s), &complete(first, true)),
            Err(Refusal::NotHolder)
        );
        let s = step(Some(&s), &complete(again.clone(), true)).unwrap();
        assert_eq!(s, Phase::Answered(again.clone()));
        assert_eq!(step(Some(&s), &Event::Take), Ok(Phase::Delivered(again)));
    }

    #[test]
    fn final_phases() {
        let finals: Vec<bool> = states()
            .into_iter()
            .flatten()
            .map(|p| p.is_final())
            .collect();
        assert_eq!(finals, [false, false, false, true, true]);
        assert_eq!(Phase::Answered(me()).name(), "done");
    }
}
