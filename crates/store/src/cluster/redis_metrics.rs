//! Grid-wide metrics in Redis: one hash of counters every process adds its
//! increments to (`HINCRBY` in one transaction), and a key per process for
//! its gauges that expires unless published again.

use super::metrics::{decode_gauges, encode_gauges, ClusterMetrics, ProcessGauges};
use super::redis::{ms, RedisCluster};
use crate::redis_store::err;
use crate::StoreResult;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;

#[async_trait]
impl ClusterMetrics for RedisCluster {
    async fn add_metrics(&self, deltas: &[(String, u64)]) -> StoreResult<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let key = self.keys.metrics();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (name, d) in deltas {
            pipe.cmd("HINCRBY").arg(&key).arg(name).arg(*d).ignore();
        }
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(err("add_metrics"))
    }

    async fn metric_totals(&self) -> StoreResult<BTreeMap<String, u64>> {
        let raw: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.metrics())
            .query_async(&mut self.conn())
            .await
            .map_err(err("metric_totals"))?;
        // A malformed number skips its counter, not the whole read.
        Ok(raw
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect())
    }

    async fn put_gauges(
        &self,
        id: &str,
        gauges: &[(String, i64)],
        ttl: Duration,
    ) -> StoreResult<()> {
        redis::pipe()
            .atomic()
            .cmd("SADD")
            .arg(self.keys.metric_procs())
            .arg(id)
            .ignore()
            .cmd("SET")
            .arg(self.keys.metric_gauges(id))
            .arg(encode_gauges(gauges))
            .arg("PX")
            .arg(ms(ttl))
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(err("put_gauges"))
    }

    async fn gauges(&self) -> StoreResult<ProcessGauges> {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.metric_procs())
            .query_async(&mut self.conn())
            .await
            .map_err(err("gauges"))?;
        if ids.is_empty() {
            return Ok(ProcessGauges::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.keys.metric_gauges(id)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.conn())
            .await
            .map_err(err("gauges"))?;
        let mut out = ProcessGauges::new();
        let mut expired = Vec::new();
        for (id, v) in ids.into_iter().zip(values) {
            match v {
                Some(v) => {
                    out.insert(id, decode_gauges(&v));
                }
                None => expired.push(id),
            }
        }
        if !expired.is_empty() {
            // Processes that stopped publishing: forget them. A process
            // publishing again at this moment is back at its next publication.
            let _: Result<(), _> = redis::cmd("SREM")
                .arg(self.keys.metric_procs())
                .arg(&expired)
                .query_async(&mut self.conn())
                .await;
        }
        Ok(out)
    }
}
