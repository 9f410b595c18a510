//! Unit tests of session isolation.

use super::*;

#[test]
fn the_environment_holds_only_what_sessions_need() {
    let grid: Vec<(&str, &str)> = vec![
        ("GRIDIRON_CLUSTER_SECRET", "s3cret"),
        ("GRIDIRON_STORE", "redis://:pw@10.0.0.5/0"),
        ("AWS_SECRET_ACCESS_KEY", "aws"),
        ("PATH", "/root/bin:."),
        ("HOME", "/root"),
        ("LANG", "de_DE.UTF-8"),
        ("LC_TIME", "C"),
        ("DISPLAY", ":1"),
        ("HTTP_PROXY", "http://proxy:3128"),
    ];
    let get = |k: &str| {
        grid.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| OsString::from(v))
    };
    let names: Vec<OsString> = grid.iter().map(|(k, _)| OsString::from(k)).collect();
    let env = session_env(
        &get,
        &names,
        &["HTTP_PROXY".into(), "NOT_SET".into()],
        Path::new("/d/sessions/x"),
        Path::new("/tmp/t"),
        Path::new("/d"),
        "x",
    );
    let map: std::collections::HashMap<String, String> = env
        .into_iter()
        .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
        .collect();
    let expected: std::collections::HashMap<String, String> = [
        ("PATH", SESSION_PATH),
        ("HOME", "/d/sessions/x/home"),
        ("TMPDIR", "/tmp/t"),
        ("XDG_CONFIG_HOME", "/d/sessions/x/config"),
        ("XDG_CACHE_HOME", "/d/sessions/x/cache"),
        (crate::ENV_MARK, "/d"),
        (crate::ENV_SESSION, "x"),
        ("LANG", "de_DE.UTF-8"),
        ("LC_TIME", "C"),
        ("DISPLAY", ":1"),
        ("HTTP_PROXY", "http://proxy:3128"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(map, expected);
}

#[test]
fn settings_are_checked() {
    let ok = IsolationSettings::default();
    assert!(ok.check().is_ok());
    let off = IsolationSettings {
        uid_base: 0,
        uid_count: 0,
        ..Default::default()
    };
    assert!(off.check().is_ok());
    for (base, count) in [
        (500, 10),
        (u32::MAX - 5, 10),
        (60_000, 10_000),
        (200_000, 0),
    ] {
        let s = IsolationSettings {
            uid_base: base,
            uid_count: count,
            ..Default::default()
        };
        assert!(s.check().is_err(), "{base} + {count}");
    }
    for name in ["", "A=B", crate::ENV_MARK] {
        let s = IsolationSettings {
            pass_env: vec![name.into()],
            ..Default::default()
        };
        assert!(s.check().is_err(), "{name:?}");
    }
}

#[test]
fn uids_are_held_by_one_holder_at_a_time() {
    let locks = tempfile::tempdir().unwrap();
    let range = UidRange::new(300_000, 2, locks.path().to_path_buf());
    let a = range.acquire().unwrap();
    let b = range.acquire().unwrap();
    assert_ne!(a.uid(), b.uid());
    // The same locks seen by another grid: nothing is free.
    let other = UidRange::new(300_000, 2, locks.path().to_path_buf());
    assert!(other.acquire().is_none());
    let freed = a.uid();
    drop(a);
    // A process forked by another test of this binary between its fork and
    // exec shares the lock's open file for a moment, so the lock is free once
    // that child has exec'd (the file is close-on-exec), not necessarily at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let again = loop {
        if let Some(l) = other.acquire() {
            break Some(l.uid());
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(again, Some(freed));
}

#[test]
fn reachability_follows_directory_modes() {
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let private = top.path().join("private");
    std::fs::create_dir(&private).unwrap();
    let prog = private.join("prog");
    std::fs::write(&prog, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(!reachable_by_others(&prog, true));
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o711)).unwrap();
    // /tmp and its parents are searchable on any Unix system the tests run on.
    assert!(reachable_by_others(&prog, true));
    assert!(reachable_by_others(&private, false));
    assert!(!reachable_by_others(&private.join("missing"), true));
}

#[test]
fn the_data_dir_is_private_but_searchable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gridiron.db"), "x").unwrap();
    std::fs::set_permissions(
        dir.path().join("gridiron.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    protect_data_dir(dir.path()).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o711);
    assert_eq!(mode(&dir.path().join("sessions")), 0o711);
    assert_eq!(mode(&dir.path().join("bin")), 0o755);
    assert_eq!(mode(&dir.path().join("gridiron.db")), 0o600);
}
