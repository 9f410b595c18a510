//! The `/metrics` document of a [`MetricsView`], as a caller may see it.

use super::{histogram_of, names, MetricsView};
use crate::auth::Caller;
use gridiron_domain::metrics::{plan, Exposition, Kind, STORE_BUCKETS_US, WAIT_BUCKETS_US};
use gridiron_domain::EndReason;
use std::collections::BTreeMap;

/// The Prometheus text of `view` for `caller`: series labelled with an API
/// key other than the caller's own are left out unless the caller is an admin.
pub(crate) fn render(view: &MetricsView, caller: &Caller) -> String {
    let mut e = Exposition::new();
    gauges(&mut e, view, caller);
    counters(&mut e, &view.counters);
    histograms(&mut e, &view.counters);
    e.finish()
}

fn gauges(e: &mut Exposition, view: &MetricsView, caller: &Caller) {
    // Every browser of every node, so a series exists at 0 too.
    let mut running: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for n in &view.nodes {
        for b in &n.browsers {
            running.entry((&n.node, b)).or_default();
        }
    }
    for s in &view.sessions {
        *running.entry((&s.node, &s.browser)).or_default() += 1;
    }
    e.family(
        "gridiron_sessions_running",
        Kind::Gauge,
        "Sessions running, by node and browser.",
    );
    for ((node, browser), n) in &running {
        e.sample(
            "gridiron_sessions_running",
            &[("node", node), ("browser", browser)],
            n,
        );
    }
    let mut by_key: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &view.sessions {
        if let Some(owner) = s.owner.as_deref().filter(|o| caller.may_use(Some(o))) {
            *by_key.entry(owner).or_default() += 1;
        }
    }
    e.family(
        "gridiron_sessions_running_by_key",
        Kind::Gauge,
        "Sessions running, by the API key that owns them (a user key sees only its own).",
    );
    for (key, n) in &by_key {
        e.sample("gridiron_sessions_running_by_key", &[("key", key)], n);
    }
    e.family(
        "gridiron_slots_total",
        Kind::Gauge,
        "Slots of each live node, once per browser it runs (a slot runs any of its browsers).",
    );
    for n in &view.nodes {
        for b in &n.browsers {
            e.sample(
                "gridiron_slots_total",
                &[("node", &n.node), ("browser", b)],
                n.total,
            );
        }
    }
    e.family(
        "gridiron_slots_free",
        Kind::Gauge,
        "Slots a new session could take now, by node and browser (0 on draining nodes).",
    );
    for n in &view.nodes {
        for b in &n.browsers {
            e.sample(
                "gridiron_slots_free",
                &[("node", &n.node), ("browser", b)],
                n.free(),
            );
        }
    }
    e.family(
        "gridiron_queue_depth",
        Kind::Gauge,
        "New-session requests waiting for a slot.",
    );
    e.sample("gridiron_queue_depth", &[], view.queued);
    e.family(
        "gridiron_tunnels_open",
        Kind::Gauge,
        "Websocket tunnels (CDP, BiDi) open.",
    );
    e.sample("gridiron_tunnels_open", &[], view.tunnels_open);
    let p = plan(view.scaling_input(0));
    e.family(
        "gridiron_scaling_desired_slots",
        Kind::Gauge,
        "Slots the current load needs: running sessions plus queued requests.",
    );
    e.sample("gridiron_scaling_desired_slots", &[], p.desired_slots);
    e.family(
        "gridiron_scaling_slot_delta",
        Kind::Gauge,
        "Slots to add (positive) or that could go (negative) for the current load.",
    );
    e.sample("gridiron_scaling_slot_delta", &[], p.slot_delta);
}

fn counters(e: &mut Exposition, c: &BTreeMap<String, u64>) {
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    e.family(
        "gridiron_commands_total",
        Kind::Counter,
        "WebDriver commands proxied to drivers.",
    );
    e.sample("gridiron_commands_total", &[], get(names::COMMANDS));
    e.family(
        "gridiron_sessions_ended_total",
        Kind::Counter,
        "Sessions ended, by reason (requests that never got a slot included).",
    );
    for r in EndReason::ALL {
        let n = get(&format!("{}{}", names::ENDED, r.as_str()));
        e.sample(
            "gridiron_sessions_ended_total",
            &[("reason", r.as_str())],
            n,
        );
    }
    e.family(
        "gridiron_webhook_deliveries_total",
        Kind::Counter,
        "Webhook delivery attempts, by result.",
    );
    for (k, n) in c.range(names::WEBHOOK.to_string()..) {
        let Some(result) = k.strip_prefix(names::WEBHOOK) else {
            break;
        };
        e.sample(
            "gridiron_webhook_deliveries_total",
            &[("result", result)],
            n,
        );
    }
}

fn histograms(e: &mut Exposition, c: &BTreeMap<String, u64>) {
    e.family(
        "gridiron_queue_wait_seconds",
        Kind::Histogram,
        "How long new-session requests waited for a slot, observed when they got one.",
    );
    let h = histogram_of(c, names::QUEUE_WAIT, WAIT_BUCKETS_US);
    e.histogram("gridiron_queue_wait_seconds", &[], WAIT_BUCKETS_US, &h);
    e.family(
        "gridiron_session_start_seconds",
        Kind::Histogram,
        "How long sessions took to start once they had a slot.",
    );
    let h = histogram_of(c, names::START, WAIT_BUCKETS_US);
    e.histogram("gridiron_session_start_seconds", &[], WAIT_BUCKETS_US, &h);
    e.family(
        "gridiron_store_seconds",
        Kind::Histogram,
        "How long calls to the store took, by operation.",
    );
    let prefix = format!("{}{}", names::HIST, names::STORE);
    let ops: Vec<&str> = c
        .range(prefix.clone()..)
        .map_while(|(k, _)| k.strip_prefix(&prefix))
        .filter_map(|rest| rest.strip_suffix(":count"))
        .collect();
    for op in ops {
        let h = histogram_of(c, &format!("{}{op}", names::STORE), STORE_BUCKETS_US);
        e.histogram(
            "gridiron_store_seconds",
            &[("op", op)],
            STORE_BUCKETS_US,
            &h,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, NodeSlots, RunningSession};
    use std::time::Duration;

    fn view() -> MetricsView {
        let m = Metrics::new();
        m.command();
        m.session_ended(EndReason::Quit);
        m.webhook_delivery("delivered");
        m.webhook_delivery("failed");
        m.store_call("get", Duration::from_micros(300));
        m.session_started(Duration::from_millis(800));
        let s = |owner: Option<&str>| RunningSession {
            node: "n1".into(),
            browser: "chrome".into(),
            owner: owner.map(str::to_string),
        };
        MetricsView {
            counters: m.snapshot(),
            tunnels_open: 2,
            sessions: vec![s(Some("alice")), s(Some("bob")), s(Some("bob")), s(None)],
            nodes: vec![NodeSlots {
                node: "n1".into(),
                browsers: vec!["chrome".into(), "firefox".into()],
                total: 5,
                used: 4,
                takes_sessions: true,
            }],
            queued: 3,
        }
    }

    fn lines(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn an_admin_sees_every_key_a_user_only_its_own() {
        let v = view();
        let admin = render(&v, &Caller::open());
        assert_eq!(
            lines(&admin, "gridiron_sessions_running_by_key{"),
            [
                "gridiron_sessions_running_by_key{key=\"alice\"} 1",
                "gridiron_sessions_running_by_key{key=\"bob\"} 2"
            ]
        );
        let bob = Caller {
            key: Some("bob".into()),
            admin: false,
            max_sessions: None,
        };
        let text = render(&v, &bob);
        assert_eq!(
            lines(&text, "gridiron_sessions_running_by_key{"),
            ["gridiron_sessions_running_by_key{key=\"bob\"} 2"]
        );
        assert!(!text.contains("alice"));
        // Everything else is the same for both.
        let strip = |t: &str| {
            lines(t, "gridiron_")
                .into_iter()
                .filter(|l| !l.contains("by_key"))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&admin), strip(&text));
    }

    #[test]
    fn every_family_is_there() {
        let t = render(&view(), &Caller::open());
        for want in [
            "gridiron_sessions_running{node=\"n1\",browser=\"chrome\"} 4",
            "gridiron_sessions_running{node=\"n1\",browser=\"firefox\"} 0",
            "gridiron_slots_total{node=\"n1\",browser=\"firefox\"} 5",
            "gridiron_slots_free{node=\"n1\",browser=\"chrome\"} 1",
            "gridiron_queue_depth 3",
            "gridiron_tunnels_open 2",
            "gridiron_scaling_desired_slots 7",
            "gridiron_scaling_slot_delta 2",
            "gridiron_commands_total 1",
            "gridiron_sessions_ended_total{reason=\"quit\"} 1",
            "gridiron_sessions_ended_total{reason=\"idle_timeout\"} 0",
            "gridiron_webhook_deliveries_total{result=\"delivered\"} 1",
            "gridiron_webhook_deliveries_total{result=\"failed\"} 1",
            "gridiron_queue_wait_seconds_count 0",
            "gridiron_session_start_seconds_bucket{le=\"1\"} 1",
            "gridiron_session_start_seconds_sum 0.8",
            "gridiron_store_seconds_bucket{op=\"get\",le=\"0.0005\"} 1",
            "gridiron_store_seconds_count{op=\"get\"} 1",
        ] {
            assert!(t.lines().any(|l| l == want), "missing {want} in\n{t}");
        }
    }
}
