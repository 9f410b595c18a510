//! Settings of a grid instance.

use gridiron_domain::launch_policy::LaunchAllowances;
use std::path::PathBuf;
use std::time::Duration;

/// How a grid behaves; filled from flags, environment and the config file.
#[derive(Debug, Clone)]
pub struct GridConfig {
    /// Sessions that may run at once.
    pub max_sessions: usize,
    /// Requests that may wait for a slot; more are refused at once.
    pub max_queue: usize,
    /// How long a request may wait for a slot.
    pub queue_timeout: Duration,
    /// Default idle timeout (no command for this long ends the session).
    pub idle_timeout: Duration,
    /// Default maximum session duration; `None` for no limit.
    pub session_timeout: Option<Duration>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long the driver may take to answer a new-session request.
    pub new_session_timeout: Duration,
    /// Start browsers headless unless the client asks otherwise.
    pub headless: bool,
    /// Keep a spare driver started per browser to make session starts fast.
    pub prewarm: bool,
    /// The URL clients use to reach the grid, written into CDP/BiDi URLs;
    /// `None` to derive it from each request's headers.
    pub public_url: Option<String>,
    /// Where the store, session files and logs live (absolute).
    pub data_dir: PathBuf,
    /// What the operator lets clients choose beyond the launch policy
    /// (`--allow-binary`, `--allow-arg`); nothing by default.
    pub launch_allowances: LaunchAllowances,
    /// Refuse requests without an API key even while no key exists.
    pub require_auth: bool,
}

impl GridConfig {
    /// Defaults for a machine with `cpus` cores and the given data directory.
    pub fn with_defaults(cpus: usize, data_dir: PathBuf) -> Self {
        GridConfig {
            max_sessions: cpus.max(1),
            max_queue: 1000,
            queue_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            session_timeout: None,
            max_body_bytes: 64 * 1024 * 1024,
            new_session_timeout: Duration::from_secs(60),
            headless: true,
            prewarm: true,
            public_url: None,
            data_dir,
            launch_allowances: LaunchAllowances::default(),
            require_auth: false,
        }
    }
}
