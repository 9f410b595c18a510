//! Grid-wide metrics of a cluster: every hub and node adds what it counted
//! since its last flush to the shared counters once a second, and a hub
//! publishes its gauges with a short lifetime. A scrape of any hub reads the
//! shared totals plus its own counts not flushed yet, so it answers for the
//! whole grid, at most a flush period behind for the other processes.

use super::Metrics;
use crate::tasks::Tasks;
use crate::timing::{METRICS_FLUSH, METRICS_GAUGE_TTL};
use gridiron_store::{Cluster, StoreResult};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Gauge name of the tunnels a hub has open.
pub(crate) const TUNNELS_OPEN: &str = "tunnels_open";

/// What this process has added to the shared counters so far. A flush and
/// a scrape take it in turn, so that a scrape never counts a flush twice
/// (once in the shared totals, once as not flushed).
#[derive(Default)]
pub(crate) struct Flushed(tokio::sync::Mutex<BTreeMap<String, u64>>);

/// `now - before`, per counter, leaving out those that did not change.
fn deltas(now: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    now.iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

impl Metrics {
    /// Adds what this process counted since its last flush to the shared
    /// counters; on failure it stays to be added at the next flush.
    pub async fn flush(&self, cluster: &dyn Cluster) -> StoreResult<()> {
        let mut flushed = self.flushed.0.lock().await;
        let now = self.snapshot();
        let d = deltas(&now, &flushed);
        if d.is_empty() {
            return Ok(());
        }
        cluster.add_metrics(&d).await?;
        *flushed = now;
        Ok(())
    }

    /// The grid-wide counters: the shared totals plus what this process
    /// counted and has not flushed yet.
    pub async fn cluster_totals(
        &self,
        cluster: &dyn Cluster,
    ) -> StoreResult<BTreeMap<String, u64>> {
        let flushed = self.flushed.0.lock().await;
        let mut totals = cluster.metric_totals().await?;
        for (k, d) in deltas(&self.snapshot(), &flushed) {
            *totals.entry(k).or_default() += d;
        }
        Ok(totals)
    }

    /// Grid-wide tunnels open: what every hub published, with this hub's
    /// own count as it is now.
    pub async fn cluster_tunnels(&self, cluster: &dyn Cluster, me: &str) -> StoreResult<i64> {
        let all = cluster.gauges().await?;
        let others: i64 = all
            .iter()
            .filter(|(id, _)| id.as_str() != me)
            .filter_map(|(_, g)| g.get(TUNNELS_OPEN))
            .sum();
        Ok(others + self.tunnels_open())
    }

    /// Publishes this hub's gauges for a while.
    async fn publish(&self, cluster: &dyn Cluster, me: &str) -> StoreResult<()> {
        let gauges = [(TUNNELS_OPEN.to_string(), self.tunnels_open())];
        cluster.put_gauges(me, &gauges, METRICS_GAUGE_TTL).await
    }
}

/// Flushes `metrics` to `cluster` every [`METRICS_FLUSH`] while `tasks`
/// run; with `publish_as` (a hub's id), publishes its gauges too.
pub(crate) fn spawn(
    tasks: &Tasks,
    metrics: Arc<Metrics>,
    cluster: Arc<dyn Cluster>,
    publish_as: Option<String>,
) {
    tasks.spawn_until_stopped(async move {
        loop {
            tokio::time::sleep(METRICS_FLUSH).await;
            if let Err(e) = metrics.flush(cluster.as_ref()).await {
                tracing::debug!(error = %e, "could not flush metrics; trying again");
            }
            if let Some(me) = &publish_as {
                if let Err(e) = metrics.publish(cluster.as_ref(), me).await {
                    tracing::debug!(error = %e, "could not publish gauges");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridiron_domain::EndReason;
    use gridiron_store::MemoryCluster;

    #[tokio::test]
    async fn two_processes_add_up_without_counting_twice() {
        let cluster = MemoryCluster::new();
        let (hub, node) = (Metrics::new(), Metrics::new());
        node.command();
        node.command();
        node.session_ended(EndReason::Quit);
        hub.session_ended(EndReason::NodeLost);
        // Before any flush, a hub sees only its own counts.
        let t = hub.cluster_totals(&cluster).await.unwrap();
        assert_eq!(t.get("commands"), None);
        assert_eq!(t.get("ended:node_lost"), Some(&1));
        node.flush(&cluster).await.unwrap();
        hub.flush(&cluster).await.unwrap();
        node.command();
        let t = hub.cluster_totals(&cluster).await.unwrap();
        assert_eq!(
            t.get("commands"),
            Some(&2),
            "the node's third is not flushed"
        );
        assert_eq!(
            t.get("ended:node_lost"),
            Some(&1),
            "flushed once, counted once"
        );
        assert_eq!(t.get("ended:quit"), Some(&1));
        // Flushing again adds only what is new.
        node.flush(&cluster).await.unwrap();
        node.flush(&cluster).await.unwrap();
        hub.flush(&cluster).await.unwrap();
        let t = node.cluster_totals(&cluster).await.unwrap();
        assert_eq!(t.get("commands"), Some(&3));
        assert_eq!(t.get("ended:node_lost"), Some(&1));
    }

    #[tokio::test]
    async fn tunnels_are_summed_over_hubs() {
        let cluster = MemoryCluster::new();
        let (a, b) = (Metrics::new(), Metrics::new());
        let _t1 = a.tunnel();
        let _t2 = b.tunnel();
        let t3 = b.tunnel();
        a.publish(&cluster, "a").await.unwrap();
        b.publish(&cluster, "b").await.unwrap();
        drop(t3);
        // Each hub counts its own tunnels as they are now.
        assert_eq!(a.cluster_tunnels(&cluster, "a").await.unwrap(), 3);
        assert_eq!(b.cluster_tunnels(&cluster, "b").await.unwrap(), 2);
    }
}
