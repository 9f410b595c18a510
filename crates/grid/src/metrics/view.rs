//! What a scrape reports, gathered by a role (see
//! [`crate::Backend::metrics_view`]): counters, tunnels, running sessions,
//! slots and the queue.

use gridiron_domain::metrics::ScalingInput;
use std::collections::BTreeMap;

/// A running session, as metrics count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningSession {
    /// The node running it (`local` on a standalone grid).
    pub node: String,
    /// `chrome`, `firefox`, ...
    pub browser: String,
    /// The API key that owns it, if any.
    pub owner: Option<String>,
}

/// A node's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSlots {
    /// Its id (`local` on a standalone grid).
    pub node: String,
    /// The browsers it runs (each slot runs any of them).
    pub browsers: Vec<String>,
    /// Its slots.
    pub total: usize,
    /// Slots in use (running or starting sessions).
    pub used: usize,
    /// Whether it takes new sessions (alive, not draining or shutting down).
    pub takes_sessions: bool,
}

impl NodeSlots {
    /// Slots a new session could take now.
    pub fn free(&self) -> usize {
        if self.takes_sessions {
            self.total.saturating_sub(self.used)
        } else {
            0
        }
    }
}

/// Everything a scrape of one role reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsView {
    /// Counters and histograms (see [`super::names`]), grid-wide.
    pub counters: BTreeMap<String, u64>,
    /// Websocket tunnels open, grid-wide.
    pub tunnels_open: i64,
    /// The running sessions.
    pub sessions: Vec<RunningSession>,
    /// The nodes and their slots.
    pub nodes: Vec<NodeSlots>,
    /// Requests waiting in the queue.
    pub queued: usize,
}

impl MetricsView {
    /// What the scaling decision needs, with `headroom` free slots wanted.
    pub fn scaling_input(&self, headroom: u64) -> ScalingInput {
        let usable = self.nodes.iter().filter(|n| n.takes_sessions);
        let (mut running, mut total) = (0u64, 0u64);
        for n in usable {
            running += n.used.min(n.total) as u64;
            total += n.total as u64;
        }
        ScalingInput {
            running,
            queued: self.queued as u64,
            total_slots: total,
            headroom,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_nodes_are_not_capacity() {
        let node = |id: &str, total, used, takes| NodeSlots {
            node: id.into(),
            browsers: vec!["chrome".into()],
            total,
            used,
            takes_sessions: takes,
        };
        let v = MetricsView {
            nodes: vec![node("a", 4, 3, true), node("b", 2, 2, false)],
            queued: 5,
            ..Default::default()
        };
        let i = v.scaling_input(1);
        assert_eq!(
            (i.running, i.queued, i.total_slots, i.headroom),
            (3, 5, 4, 1)
        );
        assert_eq!(v.nodes[0].free(), 1);
        assert_eq!(v.nodes[1].free(), 0);
    }
}
