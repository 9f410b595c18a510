//! The pure parts of the grid's metrics: histogram buckets, the Prometheus
//! text exposition format, and the scaling arithmetic behind
//! `GET /api/v1/scaling`.
//!
//! Durations are kept in whole microseconds, so sums add up exactly across
//! processes and print as exact decimals.

use std::fmt::Write;

/// Bucket bounds (microseconds) of waits and starts: queue wait and session
/// start latency, from 5 ms to 5 minutes.
pub const WAIT_BUCKETS_US: &[u64] = &[
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
];

/// Bucket bounds (microseconds) of store calls, from 100 µs to 1 s.
pub const STORE_BUCKETS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// The bucket a value of `us` microseconds falls in: the first bound it does
/// not exceed, or `bounds.len()` (the `+Inf` bucket) if it exceeds them all.
pub fn bucket_index(bounds: &[u64], us: u64) -> usize {
    bounds.partition_point(|&b| b < us)
}

/// `us` microseconds as seconds, exactly (`1500` -> `0.0015`).
pub fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// The kind of a metric family, as the `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when a process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in cumulative buckets, with their sum and count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `# HELP` text: backslash and newline.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Builds a document in the Prometheus text exposition format (version
/// 0.0.4): one `# HELP` and `# TYPE` per family, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// A histogram's state: per-bucket (not cumulative) counts, the last one
/// being `+Inf`, and the sum in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramCounts {
    /// One count per bound, then the `+Inf` bucket.
    pub buckets: Vec<u64>,
    /// Sum of the observations, in microseconds.
    pub sum_us: u64,
    /// Number of observations.
    pub count: u64,
}

impl Exposition {
    /// An empty document.
    pub fn new() -> Self {
        Exposition::default()
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The samples of a histogram of seconds: cumulative `_bucket`s with
    /// `le`, `_sum` and `_count`, each with `labels` too.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[u64],
        h: &HistogramCounts,
    ) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (i, bound) in bounds
            .iter()
            .map(|b| seconds(*b))
            .chain(["+Inf".to_string()])
            .enumerate()
        {
            cumulative += h.buckets.get(i).copied().unwrap_or(0);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &bound));
            self.sample(&bucket, &with_le, cumulative);
        }
        self.sample(&format!("{name}_sum"), labels, seconds(h.sum_us));
        self.sample(&format!("{name}_count"), labels, h.count);
    }

    /// The document (ends with a newline, or is empty).
    pub fn finish(self) -> String {
        self.out
    }
}

/// What the scaling decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScalingInput {
    /// Sessions running (or starting) on slots that take new sessions.
    pub running: u64,
    /// Requests waiting in the queue.
    pub queued: u64,
    /// Slots of live nodes that take new sessions (draining ones excluded).
    pub total_slots: u64,
    /// Free slots the operator wants kept on top of the load.
    pub headroom: u64,
}

/// How many slots the load needs, and how far the grid is from that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScalingPlan {
    /// Slots the current load needs: running + queued + headroom.
    pub desired_slots: u64,
    /// `desired_slots - total_slots`: positive to add slots, negative to remove.
    pub slot_delta: i64,
    /// Slots free now.
    pub free_slots: u64,
}

/// The slots the current load needs: every running session keeps its slot,
/// every queued request needs one, plus the headroom asked for.
pub fn plan(input: ScalingInput) -> ScalingPlan {
    let desired = input
        .running
        .saturating_add(input.queued)
        .saturating_add(input.headroom);
    let delta = i128::from(desired) - i128::from(input.total_slots);
    ScalingPlan {
        desired_slots: desired,
        slot_delta: delta.clamp(i64::MIN.into(), i64::MAX.into()) as i64,
        free_slots: input.total_slots.saturating_sub(input.running),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_first_bucket_they_do_not_exceed() {
        let b = [10, 20, 30];
        assert_eq!(bucket_index(&b, 0), 0);
        assert_eq!(bucket_index(&b, 10), 0, "a bound is inclusive (le)");
        assert_eq!(bucket_index(&b, 11), 1);
        assert_eq!(bucket_index(&b, 30), 2);
        assert_eq!(bucket_index(&b, 31), 3, "past every bound: +Inf");
        assert_eq!(bucket_index(&[], 5), 0);
        assert!(WAIT_BUCKETS_US.windows(2).all(|w| w[0] < w[1]));
        assert!(STORE_BUCKETS_US.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn seconds_print_exactly() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(1_500), "0.0015");
        assert_eq!(seconds(100), "0.0001");
        assert_eq!(seconds(2_500_001), "2.500001");
        assert_eq!(seconds(300_000_000), "300");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("plain-key_1"), "plain-key_1");
    }

    #[test]
    fn a_document_has_help_type_and_samples() {
        let mut e = Exposition::new();
        e.family(
            "gridiron_commands_total",
            Kind::Counter,
            "Commands.\nProxied",
        );
        e.sample("gridiron_commands_total", &[], 7);
        e.family("gridiron_sessions_running", Kind::Gauge, "Running.");
        e.sample(
            "gridiron_sessions_running",
            &[("node", "n\"1"), ("browser", "chrome")],
            2,
        );
        assert_eq!(
            e.finish(),
            "# HELP gridiron_commands_total Commands.\\nProxied\n\
             # TYPE gridiron_commands_total counter\n\
             gridiron_commands_total 7\n\
             # HELP gridiron_sessions_running Running.\n\
             # TYPE gridiron_sessions_running gauge\n\
             gridiron_sessions_running{node=\"n\\\"1\",browser=\"chrome\"} 2\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut e = Exposition::new();
        let h = HistogramCounts {
            buckets: vec![1, 0, 2, 1],
            sum_us: 2_000_500,
            count: 4,
        };
        e.histogram(
            "h_seconds",
            &[("op", "get")],
            &[1_000, 500_000, 1_000_000],
            &h,
        );
        assert_eq!(
            e.finish(),
            "h_seconds_bucket{op=\"get\",le=\"0.001\"} 1\n\
             h_seconds_bucket{op=\"get\",le=\"0.5\"} 1\n\
             h_seconds_bucket{op=\"get\",le=\"1\"} 3\n\
             h_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n\
             h_seconds_sum{op=\"get\"} 2.0005\n\
             h_seconds_count{op=\"get\"} 4\n"
        );
    }

    #[test]
    fn scaling_asks_for_a_slot_per_session_and_request() {
        let p = plan(ScalingInput {
            running: 3,
            queued: 4,
            total_slots: 5,
            headroom: 0,
        });
        assert_eq!(
            p,
            ScalingPlan {
                desired_slots: 7,
                slot_delta: 2,
                free_slots: 2
            }
        );
        // Idle capacity can go.
        let p = plan(ScalingInput {
            running: 1,
            queued: 0,
            total_slots: 8,
            headroom: 2,
        });
        assert_eq!((p.desired_slots, p.slot_delta, p.free_slots), (3, -5, 7));
        // No nodes at all: everything is wanted.
        let p = plan(ScalingInput {
            running: 0,
            queued: 2,
            total_slots: 0,
            headroom: 0,
        });
        assert_eq!((p.desired_slots, p.slot_delta, p.free_slots), (2, 2, 0));
        // More running than slots (a node is draining): nothing free, no overflow.
        let p = plan(ScalingInput {
            running: 4,
            queued: u64::MAX,
            total_slots: 2,
            headroom: 1,
        });
        assert_eq!(p.desired_slots, u64::MAX);
        assert_eq!(p.free_slots, 0);
        assert_eq!(p.slot_delta, i64::MAX);
    }
}
