//! How hubs and nodes encode what they tell each other.

use crate::cluster::*;
use gridiron_domain::{ErrorCode, GridError, Origin};
use serde_json::json;

#[test]
fn answers_round_trip() {
    let ok = json!({"value": {"sessionId": "x"}});
    assert_eq!(decode_answer(&encode_answer(&Ok(ok.clone()))), Ok(ok));
    let e = GridError::invalid_argument("bad");
    let back = decode_answer(&encode_answer(&Err(e))).unwrap_err();
    assert_eq!(back.code, ErrorCode::InvalidArgument);
    assert_eq!(back.origin, Origin::Client);
    assert_eq!(back.message, "bad");
    let e = GridError::not_created(Origin::Driver, "no browser");
    let back = decode_answer(&encode_answer(&Err(e.clone()))).unwrap_err();
    assert_eq!(back, e);
    assert!(decode_answer("{").is_err());
}

#[test]
fn configs_never_show_the_cluster_secret() {
    let cfg = crate::cluster::HubConfig {
        id: "hub-1".into(),
        max_queue: 1,
        queue_timeout: std::time::Duration::from_secs(1),
        start_timeout: std::time::Duration::from_secs(1),
        max_body_bytes: 1,
        public_url: None,
        secret: "a-very-secret-value".into(),
        heartbeat_ttl: std::time::Duration::from_secs(1),
        node_ca_file: None,
        launch_allowances: Default::default(),
        require_auth: false,
        allowed_origins: Vec::new(),
        max_new_session_bytes: 1024,
        artifacts_url: None,
    };
    let shown = format!("{cfg:?} {cfg:#?}");
    assert!(!shown.contains("a-very-secret-value"), "{shown}");
    assert!(shown.contains("hub-1"), "the rest is shown: {shown}");
}
