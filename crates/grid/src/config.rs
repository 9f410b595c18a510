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
    /// Fully started sessions of the default capabilities kept ready, per browser.
    pub warm: gridiron_domain::warm::WarmCounts,
    /// The pool whose defaults warm sessions are started with (a node of a
    /// pool that keeps sessions warm).
    pub warm_pool: Option<gridiron_domain::pool::Pool>,
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
    /// Web origins (`https://dash.example`) whose pages may call the grid;
    /// requests carrying any other `Origin` header are refused.
    pub allowed_origins: Vec<String>,
    /// Largest new-session request (`POST /session` body, `/cdp` query), in
    /// bytes: capabilities are small, and a request is held while it waits.
    pub max_new_session_bytes: usize,
    /// How long records of ended sessions are kept.
    pub retention: Duration,
    /// How long one command may take at the driver before the session ends.
    pub command_timeout: Duration,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Client connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Websockets (CDP, BiDi) one session may have open at once.
    pub max_websockets_per_session: usize,
    /// The most bytes stored artifacts may take (`--artifacts-max-bytes`);
    /// `None`: no quota.
    pub artifacts_max_bytes: Option<u64>,
    /// The oldest a stored artifact may get (`--artifacts-max-age`); `None`: no limit.
    pub artifacts_max_age: Option<Duration>,
    /// Where artifacts are stored (`--artifacts-url s3://bucket/prefix`);
    /// `None`: `<data_dir>/artifacts`.
    pub artifacts_url: Option<String>,
}

impl GridConfig {
    /// Defaults for a machine with `cpus` cores and the given data directory.
    pub fn with_defaults(cpus: usize, data_dir: PathBuf) -> Self {
        GridConfig {
            max_sessions: cpus.max(1),
            max_queue: 1000,
            queue_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            session_timeout: Some(DEFAULT_SESSION_TIMEOUT),
            max_body_bytes: 64 * 1024 * 1024,
            new_session_timeout: Duration::from_secs(60),
            headless: true,
            prewarm: true,
            warm: Default::default(),
            warm_pool: None,
            public_url: None,
            data_dir,
            launch_allowances: LaunchAllowances::default(),
            require_auth: false,
            allowed_origins: Vec::new(),
            max_new_session_bytes: DEFAULT_MAX_NEW_SESSION_BYTES,
            retention: DEFAULT_RETENTION,
            command_timeout: Duration::from_secs(300),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_websockets_per_session: 16,
            artifacts_max_bytes: None,
            artifacts_max_age: None,
            artifacts_url: None,
        }
    }

    /// The limits of the HTTP server of this grid.
    pub fn serve_limits(&self) -> crate::ServeLimits {
        crate::ServeLimits {
            header_read_timeout: self.header_read_timeout,
            max_connections: self.max_connections,
        }
    }
}

/// The default maximum session duration: a session nobody ends (a client
/// that keeps a stuck session busy) gives its slot back within the hour.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(3600);
/// The default largest new-session request: capabilities with room to spare.
pub const DEFAULT_MAX_NEW_SESSION_BYTES: usize = 1024 * 1024;
/// The default time records of ended sessions are kept.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The default time a client may take to send a request's headers.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default number of client connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
