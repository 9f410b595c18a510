//! Unit tests of option parsing and checking.

use super::*;
use clap::Parser;
use std::time::Duration;

#[test]
fn flags_win_over_the_file() {
    let flags = StandaloneArgs {
        port: Some(5555),
        ..Default::default()
    };
    let file: StandaloneArgs =
        toml::from_str("port = 1\nmax-sessions = 3\nqueue_timeout = 2.5").unwrap();
    let merged = flags.or(file);
    assert_eq!(merged.port, Some(5555));
    let file: StandaloneArgs = toml::from_str("require-auth = true").unwrap();
    assert_eq!(StandaloneArgs::default().or(file).require_auth, Some(true));
    assert_eq!(merged.max_sessions, Some(3));
    assert_eq!(merged.queue_timeout, Some(2.5));
}

#[test]
fn isolation_options_come_from_the_file_too() {
    let file: StandaloneArgs = toml::from_str(
        "session-uid-base = 300000\nsession_uid_count = 50\npass-env = [\"HTTP_PROXY\"]",
    )
    .unwrap();
    let merged = StandaloneArgs {
        session_uid_count: Some(7),
        ..Default::default()
    }
    .or(file);
    assert_eq!(merged.session_uid_base, Some(300_000));
    assert_eq!(merged.session_uid_count, Some(7));
    assert_eq!(merged.pass_env, Some(vec!["HTTP_PROXY".to_string()]));
}

#[test]
fn allowances_come_from_flags_or_the_file() {
    let file: StandaloneArgs = toml::from_str(
        "allow-binary = [\"/usr/bin/chromium\"]\nallow-arg = [\"--renderer-cmd-prefix\", \"--gpu-launcher\"]",
    )
    .unwrap();
    let merged = StandaloneArgs::default().or(file);
    assert_eq!(merged.allow_binary, vec!["/usr/bin/chromium"]);
    assert_eq!(merged.allow_arg.len(), 2);
    let flags = StandaloneArgs {
        allow_arg: vec!["--lang".into()],
        ..Default::default()
    };
    let file: StandaloneArgs = toml::from_str("allow_arg = [\"--x\"]").unwrap();
    assert_eq!(flags.or(file).allow_arg, vec!["--lang"]);
    let parsed = Cli::try_parse_from([
        "gridiron",
        "standalone",
        "--allow-arg",
        "--renderer-cmd-prefix",
        "--allow-arg=--gpu-launcher,--utility-cmd-prefix",
        "--allow-binary=/opt/chrome",
    ])
    .unwrap();
    let Command::Standalone(a) = parsed.command else {
        panic!("not standalone")
    };
    assert_eq!(
        a.allow_arg,
        vec![
            "--renderer-cmd-prefix",
            "--gpu-launcher",
            "--utility-cmd-prefix"
        ]
    );
    assert_eq!(a.allow_binary, vec!["/opt/chrome"]);
}

#[test]
fn bounds_have_defaults_and_come_from_the_file() {
    let dir = std::env::temp_dir().join(format!("gridiron-cli-bounds-{}", std::process::id()));
    let defaults = resolve(StandaloneArgs {
        data_dir: Some(dir.clone()),
        ..Default::default()
    })
    .unwrap()
    .grid;
    assert_eq!(defaults.session_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(defaults.max_new_session_bytes, 1024 * 1024);
    assert_eq!(defaults.max_body_bytes, 64 * 1024 * 1024);
    assert_eq!(defaults.retention, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(defaults.command_timeout, Duration::from_secs(300));
    assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
    assert_eq!(defaults.max_connections, 1024);
    assert_eq!(defaults.max_websockets_per_session, 16);
    assert!(defaults.allowed_origins.is_empty());
    let file: StandaloneArgs = toml::from_str(
        "allowed-origin = [\"https://dash.example\"]\nmax-new-session-bytes = 2048\n\
         retention = 60\ncommand-timeout = 5\nheader_read_timeout = 2\n\
         max-connections = 8\nmax-websockets-per-session = 2",
    )
    .unwrap();
    let flags = StandaloneArgs {
        data_dir: Some(dir.clone()),
        max_connections: Some(9),
        ..Default::default()
    };
    let g = resolve(flags.or(file)).unwrap().grid;
    assert_eq!(g.allowed_origins, ["https://dash.example"]);
    assert_eq!(g.max_new_session_bytes, 2048);
    assert_eq!(g.retention, Duration::from_secs(60));
    assert_eq!(g.command_timeout, Duration::from_secs(5));
    assert_eq!(g.header_read_timeout, Duration::from_secs(2));
    assert_eq!(g.max_connections, 9, "the flag wins");
    assert_eq!(g.max_websockets_per_session, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_file_keys_are_rejected() {
    assert!(toml::from_str::<StandaloneArgs>("prot = 1").is_err());
}

#[test]
fn bad_values_are_rejected() {
    let dir = std::env::temp_dir().join(format!("gridiron-cli-{}", std::process::id()));
    let args = |f: fn(&mut StandaloneArgs)| {
        let mut a = StandaloneArgs {
            data_dir: Some(dir.clone()),
            ..Default::default()
        };
        f(&mut a);
        a
    };
    assert!(resolve(args(|a| a.queue_timeout = Some(-1.0))).is_err());
    assert!(resolve(args(|a| a.max_sessions = Some(0))).is_err());
    assert!(resolve(args(|a| a.host = Some("not a host".into()))).is_err());
    assert!(resolve(args(|a| a.log_format = Some("xml".into()))).is_err());
    assert!(resolve(args(|a| a.session_uid_base = Some(10))).is_err());
    assert!(resolve(args(|a| a.pass_env = Some(vec!["A=B".into()]))).is_err());
    assert!(resolve(args(|a| a.allow_binary = vec!["chromium".into()])).is_err());
    assert!(resolve(args(|a| a.allow_arg = vec!["--".into()])).is_err());
    let ok = resolve(args(|a| a.session_timeout = Some(30.0))).unwrap();
    assert_eq!(ok.grid.session_timeout, Some(Duration::from_secs(30)));
    assert_eq!(ok.addr.port(), 4444);
    assert_eq!(ok.isolation.uid_base, 200_000);
    assert!(ok.isolation.pass_env.is_empty());
    assert!(resolve(args(|a| a.max_connections = Some(0))).is_err());
    assert!(resolve(args(|a| a.max_websockets_per_session = Some(0))).is_err());
    assert!(resolve(args(|a| a.max_new_session_bytes = Some(0))).is_err());
    assert!(resolve(args(|a| a.command_timeout = Some(0.0))).is_err());
    assert!(resolve(args(|a| a.header_read_timeout = Some(-1.0))).is_err());
    assert!(resolve(args(|a| a.webhook_retry_base_ms = Some(0))).is_err());
    assert!(resolve(args(|a| a.webhook_disable_after = Some(0))).is_err());
    assert_eq!(
        ok.webhooks.policy,
        gridiron_domain::webhooks::RetryPolicy::default()
    );
    let fast = resolve(args(|a| {
        a.webhook_retry_base_ms = Some(50);
        a.webhook_disable_after = Some(3);
    }))
    .unwrap();
    assert_eq!(fast.webhooks.policy.base_ms, 50);
    assert_eq!(fast.webhooks.policy.disable_after, 3);
    assert!(resolve(args(|a| a.retention = Some(f64::NAN))).is_err());
    assert!(resolve(args(
        |a| a.allowed_origin = Some(vec!["evil.example".into()])
    ))
    .is_err());
    assert!(resolve(args(|a| {
        a.allowed_origin = Some(vec!["https://dash.example/path".into()])
    }))
    .is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn artifact_options_come_from_flags_and_the_file_and_are_checked() {
    let dir = std::env::temp_dir().join(format!("gridiron-cli-artifacts-{}", std::process::id()));
    let defaults = resolve(StandaloneArgs {
        data_dir: Some(dir.clone()),
        ..Default::default()
    })
    .unwrap()
    .grid;
    assert_eq!(
        (defaults.artifacts_max_bytes, defaults.artifacts_max_age),
        (None, None)
    );
    assert_eq!(defaults.artifacts_url, None);
    let file: StandaloneArgs =
        toml::from_str("artifacts-max-bytes = 1000\nartifacts_max_age = 3600").unwrap();
    let g = resolve(
        StandaloneArgs {
            data_dir: Some(dir.clone()),
            artifacts_max_bytes: Some(5),
            ..Default::default()
        }
        .or(file),
    )
    .unwrap()
    .grid;
    assert_eq!(g.artifacts_max_bytes, Some(5), "the flag wins");
    assert_eq!(g.artifacts_max_age, Some(Duration::from_secs(3600)));
    for (age, url) in [
        (Some(-1.0), None),
        (None, Some("file:///tmp/x")),
        (None, Some("/var/artifacts")),
    ] {
        let bad = resolve(StandaloneArgs {
            data_dir: Some(dir.clone()),
            artifacts_max_age: age,
            artifacts_url: url.map(str::to_string),
            ..Default::default()
        });
        assert!(bad.is_err(), "{age:?} {url:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
