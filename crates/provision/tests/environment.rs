//! What a driver started by the grid can see of the grid: none of its
//! secrets, and (as root) not its user.
//!
//! One test in its own binary: it plants secrets in this process's
//! environment, which no other test may race with.

use gridiron_provision::isolation::UidRange;
use gridiron_provision::{BrowserInstall, DriverProcess, Isolation, SessionProcess};
use std::os::unix::fs::PermissionsExt;

const SECRETS: &[(&str, &str)] = &[
    ("GRIDIRON_CLUSTER_SECRET", "planted-cluster-secret"),
    (
        "GRIDIRON_STORE",
        "redis://:planted-redis-password@10.0.0.5:6379/0",
    ),
    ("AWS_SECRET_ACCESS_KEY", "planted-aws-secret"),
    ("GRIDIRON_API_KEY", "planted-api-key"),
    ("DATABASE_URL", "postgres://u:planted-db-password@db/x"),
];

#[test]
fn a_driver_gets_none_of_the_grids_secrets() {
    for (k, v) in SECRETS {
        std::env::set_var(k, v);
    }
    let dir = tempfile::tempdir().unwrap();
    // Reachable by a session user, should the test run as root.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let driver = dir.path().join("fake-chromedriver");
    std::fs::write(
        &driver,
        "#!/bin/sh\necho 'ChromeDriver was started successfully on port 1.'\nexec sleep 60\n",
    )
    .unwrap();
    std::fs::set_permissions(&driver, std::fs::Permissions::from_mode(0o755)).unwrap();
    let install = BrowserInstall {
        stereotype: gridiron_domain::Stereotype {
            kind: gridiron_domain::BrowserKind::Chromium,
            version: "1".into(),
            platform: "linux".into(),
            binary: "/bin/false".into(),
        },
        driver,
        driver_version: "1".into(),
    };
    let root = unsafe { libc::geteuid() } == 0;
    let locks = tempfile::tempdir().unwrap();
    let mut isolation = Isolation::shared();
    if root {
        isolation.uids = Some(UidRange::new(310_000, 10, locks.path().to_path_buf()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let session_dir = dir.path().join("sessions").join("s1");
        let p = DriverProcess::spawn(&install, ("s1", &session_dir), dir.path(), &isolation, &[])
            .await
            .expect("the fake driver starts");
        let pid = p.pid().unwrap();
        // The script execs `sleep` right after its line of output; while that
        // exec runs, /proc shows the process without its environment. Read it
        // once the process is `sleep`.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let environ = loop {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if comm.trim() == "sleep" && !environ.is_empty() {
                break environ;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the fake driver never became `sleep` (comm {comm:?})"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        let text = String::from_utf8_lossy(&environ);
        for (k, v) in SECRETS {
            assert!(!text.contains(k) && !text.contains(v), "{k} leaked: {text}");
        }
        let entries: Vec<&str> = text.split('\0').filter(|e| !e.is_empty()).collect();
        let mark = format!("{}={}", gridiron_provision::ENV_MARK, dir.path().display());
        assert!(entries.contains(&mark.as_str()), "{entries:?}");
        assert!(
            entries.contains(&"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        );
        let home = format!("HOME={}", session_dir.join("home").display());
        assert!(entries.contains(&home.as_str()), "{entries:?}");
        if root {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
            let uids: Vec<u32> = uid_line
                .split_whitespace()
                .skip(1)
                .map(|u| u.parse().unwrap())
                .collect();
            assert!(
                uids.iter().all(|u| (310_000..310_010).contains(u)),
                "{uid_line}"
            );
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&session_dir).unwrap();
            assert_eq!(meta.uid(), uids[0]);
            assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        }
        p.shutdown().await;
        assert!(!session_dir.exists());
    });
}
