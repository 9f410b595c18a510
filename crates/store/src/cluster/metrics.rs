//! Grid-wide metrics in the shared state: counters every hub and node adds
//! its increments to, and gauges each process publishes for a short while.
//! A scrape of any hub reads them here, so it answers for the whole grid.

use super::memory_state::State;
use super::MemoryCluster;
use crate::StoreResult;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Gauges by process id, each a map of name -> value.
pub type ProcessGauges = BTreeMap<String, BTreeMap<String, i64>>;

/// The metrics part of [`super::Cluster`].
#[async_trait]
pub trait ClusterMetrics: Send + Sync {
    /// Adds `deltas` (name -> increment) to the grid-wide counters, all of
    /// them or none.
    async fn add_metrics(&self, deltas: &[(String, u64)]) -> StoreResult<()>;
    /// The grid-wide counters: every increment added so far, by name.
    async fn metric_totals(&self) -> StoreResult<BTreeMap<String, u64>>;
    /// Publishes process `id`'s gauges, replacing those it published
    /// before; they count for `ttl` unless published again.
    async fn put_gauges(
        &self,
        id: &str,
        gauges: &[(String, i64)],
        ttl: Duration,
    ) -> StoreResult<()>;
    /// The gauges of every process whose publication has not expired.
    async fn gauges(&self) -> StoreResult<ProcessGauges>;
}

/// What a [`MemoryCluster`] keeps of the metrics (inside its one state, so
/// that clearing the state clears them too).
#[derive(Default)]
pub(super) struct MemoryMetrics {
    totals: BTreeMap<String, u64>,
    gauges: BTreeMap<String, (Instant, BTreeMap<String, i64>)>,
}

impl State {
    fn metrics_mut(&mut self, now: Instant) -> &mut MemoryMetrics {
        self.metrics.gauges.retain(|_, (expires, _)| *expires > now);
        &mut self.metrics
    }
}

#[async_trait]
impl ClusterMetrics for MemoryCluster {
    async fn add_metrics(&self, deltas: &[(String, u64)]) -> StoreResult<()> {
        let (mut g, now) = self.lock();
        let m = g.metrics_mut(now);
        for (name, d) in deltas {
            let v = m.totals.entry(name.clone()).or_default();
            *v = v.wrapping_add(*d);
        }
        Ok(())
    }

    async fn metric_totals(&self) -> StoreResult<BTreeMap<String, u64>> {
        let (mut g, now) = self.lock();
        Ok(g.metrics_mut(now).totals.clone())
    }

    async fn put_gauges(
        &self,
        id: &str,
        gauges: &[(String, i64)],
        ttl: Duration,
    ) -> StoreResult<()> {
        let (mut g, now) = self.lock();
        let expires = now + ttl.max(Duration::from_millis(1));
        let values = gauges.iter().cloned().collect();
        g.metrics_mut(now)
            .gauges
            .insert(id.to_string(), (expires, values));
        Ok(())
    }

    async fn gauges(&self) -> StoreResult<ProcessGauges> {
        let (mut g, now) = self.lock();
        Ok(g.metrics_mut(now)
            .gauges
            .iter()
            .map(|(id, (_, v))| (id.clone(), v.clone()))
            .collect())
    }
}

/// Encodes gauges as one string value (`name=value` lines).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(super) fn encode_gauges(gauges: &[(String, i64)]) -> String {
    gauges.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// Decodes [`encode_gauges`]; malformed lines are skipped.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(super) fn decode_gauges(s: &str) -> BTreeMap<String, i64> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_survive_their_encoding() {
        let g = vec![("tunnels_open".to_string(), 3), ("a=b".to_string(), -1)];
        let back = decode_gauges(&encode_gauges(&g));
        assert_eq!(back.get("tunnels_open"), Some(&3));
        assert_eq!(back.get("a=b"), Some(&-1));
        assert!(decode_gauges("junk\nx=notanumber\n").is_empty());
    }
}
