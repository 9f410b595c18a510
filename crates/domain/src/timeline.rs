//! A session's lifecycle as the grid saw it, step by step with timestamps:
//! kept as the session's `timeline.json` artifact.

use serde_json::{json, Value};

/// One step of a session's life.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Unix ms when it happened.
    pub at_ms: i64,
    /// What happened (`requested`, `queued`, `slot_granted`, `provisioning`,
    /// `driver_ready`, `browser_started`, `started`, `ending`, ...).
    pub name: &'static str,
    /// What the step is about (a queue position, a slot, an end reason), if anything.
    pub detail: Option<Value>,
}

/// The timeline document of session `id` with `steps` (in the order they
/// happened) and the number of commands it served.
pub fn document(id: &str, steps: &[Step], commands: u64) -> Value {
    let first = steps.first().map_or(0, |s| s.at_ms);
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| {
            let mut v = json!({
                "step": s.name,
                "at": s.at_ms,
                "elapsedMs": s.at_ms - first,
            });
            if let Some(d) = &s.detail {
                v["detail"] = d.clone();
            }
            v
        })
        .collect();
    json!({ "sessionId": id, "commands": commands, "steps": steps })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_keep_their_order_and_time_since_the_first() {
        let steps = [
            Step {
                at_ms: 1_000,
                name: "requested",
                detail: None,
            },
            Step {
                at_ms: 1_250,
                name: "slot_granted",
                detail: Some(json!({"slot": 0})),
            },
            Step {
                at_ms: 3_000,
                name: "ending",
                detail: Some(json!({"reason": "quit"})),
            },
        ];
        let d = document("s1", &steps, 7);
        assert_eq!(d["sessionId"], "s1");
        assert_eq!(d["commands"], 7);
        let s = d["steps"].as_array().unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[0],
            json!({"step": "requested", "at": 1000, "elapsedMs": 0})
        );
        assert_eq!(s[1]["detail"]["slot"], 0);
        assert_eq!(s[2]["elapsedMs"], 2000);
        assert_eq!(document("s2", &[], 0)["steps"], json!([]));
    }
}
