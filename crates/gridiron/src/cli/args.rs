//! The options of `gridiron standalone` (and of nodes, which take them all),
//! merged from flags, environment and the config file, and checked.

use clap::Args;
use gridiron_domain::launch_policy::LaunchAllowances;
use gridiron_grid::GridConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `gridiron standalone`. Every option can also come from the
/// environment or from the config file (same name, `snake_case` or `kebab-case`).
#[derive(Args, Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct StandaloneArgs {
    /// TOML config file with any of these options.
    #[arg(long, env = "GRIDIRON_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0].
    #[arg(long, env = "GRIDIRON_HOST")]
    pub host: Option<String>,
    /// Port to listen on [default: 4444].
    #[arg(long, env = "GRIDIRON_PORT")]
    pub port: Option<u16>,
    /// Directory for the store, session files and logs [default: ~/.local/share/gridiron].
    #[arg(long, env = "GRIDIRON_DATA_DIR")]
    #[serde(alias = "data_dir")]
    pub data_dir: Option<PathBuf>,
    /// Sessions that may run at once [default: number of CPUs].
    #[arg(long, env = "GRIDIRON_MAX_SESSIONS")]
    #[serde(alias = "max_sessions")]
    pub max_sessions: Option<usize>,
    /// Requests that may wait for a slot; more are refused at once [default: 1000].
    #[arg(long, env = "GRIDIRON_MAX_QUEUE")]
    #[serde(alias = "max_queue")]
    pub max_queue: Option<usize>,
    /// Seconds a request may wait for a slot before it fails [default: 300].
    #[arg(long, env = "GRIDIRON_QUEUE_TIMEOUT")]
    #[serde(alias = "queue_timeout")]
    pub queue_timeout: Option<f64>,
    /// Seconds without a command after which a session ends [default: 300];
    /// a session may override it with `gridiron:options.idleTimeout`.
    #[arg(long, env = "GRIDIRON_IDLE_TIMEOUT")]
    #[serde(alias = "idle_timeout")]
    pub idle_timeout: Option<f64>,
    /// Maximum session duration in seconds [default: none];
    /// a session may override it with `gridiron:options.sessionTimeout`.
    #[arg(long, env = "GRIDIRON_SESSION_TIMEOUT")]
    #[serde(alias = "session_timeout")]
    pub session_timeout: Option<f64>,
    /// Largest request body accepted, in bytes [default: 67108864].
    #[arg(long, env = "GRIDIRON_MAX_BODY_BYTES")]
    #[serde(alias = "max_body_bytes")]
    pub max_body_bytes: Option<usize>,
    /// Seconds the driver may take to start a browser [default: 60].
    #[arg(long, env = "GRIDIRON_NEW_SESSION_TIMEOUT")]
    #[serde(alias = "new_session_timeout")]
    pub new_session_timeout: Option<f64>,
    /// Start browsers with a visible window unless the client asks for headless.
    #[arg(long, env = "GRIDIRON_HEADFUL", num_args = 0..=1, default_missing_value = "true")]
    pub headful: Option<bool>,
    /// Do not keep a spare driver started ahead of demand.
    #[arg(long, env = "GRIDIRON_NO_PREWARM", num_args = 0..=1, default_missing_value = "true")]
    #[serde(alias = "no_prewarm")]
    pub no_prewarm: Option<bool>,
    /// Sessions kept fully started for requests of the default capabilities,
    /// per browser, e.g. `chrome=2,firefox=1` [default: none]. They count
    /// against --max-sessions but give their slots up to waiting requests.
    #[arg(long, env = "GRIDIRON_WARM")]
    pub warm: Option<String>,
    /// The URL clients use to reach the grid (e.g. behind a proxy), written into
    /// CDP and BiDi websocket URLs [default: from each request's Host / X-Forwarded-* / Forwarded].
    #[arg(long, env = "GRIDIRON_PUBLIC_URL")]
    #[serde(alias = "public_url")]
    pub public_url: Option<String>,
    /// Log format: `text` or `json` [default: text]. Levels come from `GRIDIRON_LOG` (e.g. `debug`).
    #[arg(long, env = "GRIDIRON_LOG_FORMAT")]
    #[serde(alias = "log_format")]
    pub log_format: Option<String>,
    /// When the grid runs as root: first user id that sessions' drivers and
    /// browsers run under, one id per session, so a page cannot read the store
    /// or other sessions' files; 0 runs them as root [default: 200000].
    #[arg(long, env = "GRIDIRON_SESSION_UID_BASE")]
    #[serde(alias = "session_uid_base")]
    pub session_uid_base: Option<u32>,
    /// How many user ids from --session-uid-base on sessions may use [default: 10000].
    #[arg(long, env = "GRIDIRON_SESSION_UID_COUNT")]
    #[serde(alias = "session_uid_count")]
    pub session_uid_count: Option<u32>,
    /// Variables of the grid's environment that drivers and browsers also get
    /// (comma-separated names, e.g. `HTTP_PROXY,NO_PROXY`); they get no others
    /// but PATH, HOME, TMPDIR, the display, locale and time zone [default: none].
    #[arg(long, env = "GRIDIRON_PASS_ENV", value_delimiter = ',')]
    #[serde(alias = "pass_env")]
    pub pass_env: Option<Vec<String>>,
    /// A browser binary clients may name in `goog:chromeOptions.binary` /
    /// `moz:firefoxOptions.binary` (repeatable; exact path) [default: none].
    #[arg(
        long = "allow-binary",
        env = "GRIDIRON_ALLOW_BINARY",
        value_delimiter = ','
    )]
    #[serde(alias = "allow_binary")]
    pub allow_binary: Vec<String>,
    /// A prefix of refused browser switches or options clients may use anyway
    /// (repeatable), e.g. `--allow-arg=--renderer-cmd-prefix` [default: none].
    #[arg(
        long = "allow-arg",
        env = "GRIDIRON_ALLOW_ARG",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    #[serde(alias = "allow_arg")]
    pub allow_arg: Vec<String>,
    /// Refuse requests without an API key even while no key exists (`/status` stays
    /// open) [default: a key is needed as soon as one exists].
    #[arg(long, env = "GRIDIRON_REQUIRE_AUTH", num_args = 0..=1, default_missing_value = "true")]
    #[serde(alias = "require_auth")]
    pub require_auth: Option<bool>,
    /// A web origin (`https://dash.example`, or `*` for any) whose pages may
    /// call the grid (repeatable); requests with any other `Origin` header
    /// are refused [default: none].
    #[arg(
        long = "allowed-origin",
        env = "GRIDIRON_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    #[serde(
        alias = "allowed_origin",
        alias = "allowed-origins",
        alias = "allowed_origins"
    )]
    pub allowed_origin: Option<Vec<String>>,
    /// Largest new-session request (`POST /session` body, `/cdp` query), in bytes [default: 1048576].
    #[arg(long, env = "GRIDIRON_MAX_NEW_SESSION_BYTES")]
    #[serde(alias = "max_new_session_bytes")]
    pub max_new_session_bytes: Option<usize>,
    /// Seconds records of ended sessions are kept [default: 2592000, 30 days].
    #[arg(long, env = "GRIDIRON_RETENTION")]
    pub retention: Option<f64>,
    /// Seconds one command may take at the driver; a slower one is answered
    /// `timeout` and ends the session (`command_timeout`) [default: 300].
    #[arg(long, env = "GRIDIRON_COMMAND_TIMEOUT")]
    #[serde(alias = "command_timeout")]
    pub command_timeout: Option<f64>,
    /// Seconds a client may take to send a request's headers [default: 10].
    #[arg(long, env = "GRIDIRON_HEADER_READ_TIMEOUT")]
    #[serde(alias = "header_read_timeout")]
    pub header_read_timeout: Option<f64>,
    /// Client connections served at once; more wait to be accepted [default: 1024].
    #[arg(long, env = "GRIDIRON_MAX_CONNECTIONS")]
    #[serde(alias = "max_connections")]
    pub max_connections: Option<usize>,
    /// Websockets (CDP, BiDi) one session may have open at once [default: 16].
    #[arg(long, env = "GRIDIRON_MAX_WEBSOCKETS_PER_SESSION")]
    #[serde(alias = "max_websockets_per_session")]
    pub max_websockets_per_session: Option<usize>,
    /// Milliseconds the first webhook retry waits at most; each later one up
    /// to twice as long, capped at 120 times this, for 720 times this in all
    /// [default: 5000: up to 10 minutes apart, for an hour]. Lower it for
    /// tests and demos only.
    #[arg(long, env = "GRIDIRON_WEBHOOK_RETRY_BASE_MS")]
    #[serde(alias = "webhook_retry_base_ms")]
    pub webhook_retry_base_ms: Option<u64>,
    /// Failed webhook attempts in a row, spanning the whole retry window,
    /// after which a subscription is disabled [default: 20].
    #[arg(long, env = "GRIDIRON_WEBHOOK_DISABLE_AFTER")]
    #[serde(alias = "webhook_disable_after")]
    pub webhook_disable_after: Option<u32>,
    /// The most bytes stored artifacts may take; the oldest of ended sessions
    /// are removed first [default: no quota]. Local storage: per node.
    #[arg(long, env = "GRIDIRON_ARTIFACTS_MAX_BYTES")]
    #[serde(alias = "artifacts_max_bytes")]
    pub artifacts_max_bytes: Option<u64>,
    /// Seconds an artifact is kept [default: until the quota needs its room].
    #[arg(long, env = "GRIDIRON_ARTIFACTS_MAX_AGE")]
    #[serde(alias = "artifacts_max_age")]
    pub artifacts_max_age: Option<f64>,
    /// Store artifacts in an S3-compatible bucket, `s3://bucket/prefix`
    /// (endpoint and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION) [default: <data-dir>/artifacts].
    #[arg(long, env = "GRIDIRON_ARTIFACTS_URL")]
    #[serde(alias = "artifacts_url")]
    pub artifacts_url: Option<String>,
}

impl StandaloneArgs {
    /// Fills options not given on the command line or environment from `file`.
    pub(crate) fn or(self, file: StandaloneArgs) -> StandaloneArgs {
        StandaloneArgs {
            config: self.config,
            host: self.host.or(file.host),
            port: self.port.or(file.port),
            data_dir: self.data_dir.or(file.data_dir),
            max_sessions: self.max_sessions.or(file.max_sessions),
            max_queue: self.max_queue.or(file.max_queue),
            queue_timeout: self.queue_timeout.or(file.queue_timeout),
            idle_timeout: self.idle_timeout.or(file.idle_timeout),
            session_timeout: self.session_timeout.or(file.session_timeout),
            max_body_bytes: self.max_body_bytes.or(file.max_body_bytes),
            new_session_timeout: self.new_session_timeout.or(file.new_session_timeout),
            headful: self.headful.or(file.headful),
            no_prewarm: self.no_prewarm.or(file.no_prewarm),
            warm: self.warm.or(file.warm),
            public_url: self.public_url.or(file.public_url),
            log_format: self.log_format.or(file.log_format),
            session_uid_base: self.session_uid_base.or(file.session_uid_base),
            session_uid_count: self.session_uid_count.or(file.session_uid_count),
            pass_env: self.pass_env.or(file.pass_env),
            allow_binary: or_list(self.allow_binary, file.allow_binary),
            allow_arg: or_list(self.allow_arg, file.allow_arg),
            require_auth: self.require_auth.or(file.require_auth),
            allowed_origin: self.allowed_origin.or(file.allowed_origin),
            max_new_session_bytes: self.max_new_session_bytes.or(file.max_new_session_bytes),
            retention: self.retention.or(file.retention),
            command_timeout: self.command_timeout.or(file.command_timeout),
            header_read_timeout: self.header_read_timeout.or(file.header_read_timeout),
            max_connections: self.max_connections.or(file.max_connections),
            max_websockets_per_session: self
                .max_websockets_per_session
                .or(file.max_websockets_per_session),
            webhook_retry_base_ms: self.webhook_retry_base_ms.or(file.webhook_retry_base_ms),
            webhook_disable_after: self.webhook_disable_after.or(file.webhook_disable_after),
            artifacts_max_bytes: self.artifacts_max_bytes.or(file.artifacts_max_bytes),
            artifacts_max_age: self.artifacts_max_age.or(file.artifacts_max_age),
            artifacts_url: self.artifacts_url.or(file.artifacts_url),
        }
    }
}

/// A list option: the one given on the command line or environment, else the file's.
fn or_list(given: Vec<String>, file: Vec<String>) -> Vec<String> {
    if given.is_empty() {
        file
    } else {
        given
    }
}

pub(crate) fn seconds(name: &str, v: Option<f64>, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(format!(
            "--{name} must be a positive number of seconds, got {s}"
        )),
    }
}

pub(crate) fn default_data_dir() -> PathBuf {
    // As root, sessions run under user ids of their own, which must reach their
    // directories under the data dir: root's home is closed to them.
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/gridiron");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("gridiron")
}

/// Resolved settings of a standalone grid (or a node's local part).
pub(crate) struct Standalone {
    pub(crate) addr: SocketAddr,
    pub(crate) grid: GridConfig,
    pub(crate) json_logs: bool,
    /// How sessions are kept from the grid's secrets and from each other.
    pub(crate) isolation: gridiron_provision::IsolationSettings,
    /// How webhooks are retried and disabled.
    pub(crate) webhooks: gridiron_grid::webhooks::WebhookSettings,
}

/// The webhook settings from `--webhook-retry-base-ms` and `--webhook-disable-after`.
pub(crate) fn webhook_settings(
    base_ms: Option<u64>,
    disable_after: Option<u32>,
) -> Result<gridiron_grid::webhooks::WebhookSettings, String> {
    let defaults = gridiron_domain::webhooks::RetryPolicy::default();
    let base_ms = base_ms.unwrap_or(defaults.base_ms);
    if base_ms == 0 {
        return Err("--webhook-retry-base-ms must be at least 1".into());
    }
    let disable_after = disable_after.unwrap_or(defaults.disable_after);
    if disable_after == 0 {
        return Err("--webhook-disable-after must be at least 1".into());
    }
    Ok(gridiron_grid::webhooks::WebhookSettings::new(
        base_ms,
        disable_after,
    ))
}

pub(crate) fn resolve(args: StandaloneArgs) -> Result<Standalone, String> {
    let args = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
            let file: StandaloneArgs = toml::from_str(&text)
                .map_err(|e| format!("invalid config {}: {e}", path.display()))?;
            args.or(file)
        }
        None => args,
    };
    let addr = listen_addr(args.host.clone(), args.port.unwrap_or(4444))?;
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .map_err(|e| format!("data dir {}: {e}", data_dir.display()))?;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut grid = GridConfig::with_defaults(cpus, data_dir);
    if let Some(n) = args.max_sessions {
        if n == 0 {
            return Err("--max-sessions must be at least 1".into());
        }
        grid.max_sessions = n;
    }
    if let Some(n) = args.max_queue {
        grid.max_queue = n;
    }
    if let Some(n) = args.max_body_bytes {
        grid.max_body_bytes = n;
    }
    grid.queue_timeout = seconds("queue-timeout", args.queue_timeout, grid.queue_timeout)?;
    grid.idle_timeout = seconds("idle-timeout", args.idle_timeout, grid.idle_timeout)?;
    grid.new_session_timeout = seconds(
        "new-session-timeout",
        args.new_session_timeout,
        grid.new_session_timeout,
    )?;
    if args.session_timeout.is_some() {
        grid.session_timeout = Some(seconds(
            "session-timeout",
            args.session_timeout,
            Duration::ZERO,
        )?);
    }
    grid.headless = !args.headful.unwrap_or(false);
    grid.prewarm = !args.no_prewarm.unwrap_or(false);
    grid.warm = gridiron_domain::warm::WarmCounts::parse(args.warm.as_deref().unwrap_or(""))?;
    resolve_bounds(&mut grid, &args)?;
    grid.public_url = public_url(args.public_url)?;
    grid.launch_allowances = LaunchAllowances::new(args.allow_binary, args.allow_arg)?;
    grid.require_auth = args.require_auth.unwrap_or(false);
    let json_logs = json_logs(args.log_format.as_deref())?;
    let defaults = gridiron_provision::IsolationSettings::default();
    let isolation = gridiron_provision::IsolationSettings {
        uid_base: args.session_uid_base.unwrap_or(defaults.uid_base),
        uid_count: args.session_uid_count.unwrap_or(defaults.uid_count),
        pass_env: args.pass_env.unwrap_or_default(),
    };
    isolation.check()?;
    let webhooks = webhook_settings(args.webhook_retry_base_ms, args.webhook_disable_after)?;
    Ok(Standalone {
        addr,
        webhooks,
        grid,
        json_logs,
        isolation,
    })
}

/// The request, time and connection bounds of `args` (defaults where unset).
fn resolve_bounds(grid: &mut GridConfig, args: &StandaloneArgs) -> Result<(), String> {
    if let Some(origins) = &args.allowed_origin {
        grid.allowed_origins = allowed_origins(origins)?;
    }
    grid.max_new_session_bytes = at_least_one(
        "max-new-session-bytes",
        args.max_new_session_bytes,
        grid.max_new_session_bytes,
    )?;
    grid.retention = seconds("retention", args.retention, grid.retention)?;
    grid.artifacts_max_bytes = args.artifacts_max_bytes;
    if args.artifacts_max_age.is_some() {
        grid.artifacts_max_age = Some(seconds(
            "artifacts-max-age",
            args.artifacts_max_age,
            Duration::ZERO,
        )?);
    }
    grid.artifacts_url = args.artifacts_url.clone();
    // Checked now, so a bad URL stops the start instead of a later upload.
    gridiron_grid::artifacts::backend_for(grid.artifacts_url.as_deref(), &grid.data_dir)?;
    grid.command_timeout = seconds(
        "command-timeout",
        args.command_timeout,
        grid.command_timeout,
    )?;
    grid.header_read_timeout = seconds(
        "header-read-timeout",
        args.header_read_timeout,
        grid.header_read_timeout,
    )?;
    grid.max_connections = at_least_one(
        "max-connections",
        args.max_connections,
        grid.max_connections,
    )?;
    grid.max_websockets_per_session = at_least_one(
        "max-websockets-per-session",
        args.max_websockets_per_session,
        grid.max_websockets_per_session,
    )?;
    Ok(())
}

/// A count option that must be at least 1.
pub(crate) fn at_least_one(name: &str, v: Option<usize>, default: usize) -> Result<usize, String> {
    match v {
        None => Ok(default),
        Some(0) => Err(format!("--{name} must be at least 1")),
        Some(n) => Ok(n),
    }
}

/// `--allowed-origin` values: `*`, or `scheme://host[:port]` as browsers send them.
pub(crate) fn allowed_origins(origins: &[String]) -> Result<Vec<String>, String> {
    origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .map(|o| {
            let origin_like = o == "*"
                || o == "null"
                || ((o.starts_with("http://") || o.starts_with("https://"))
                    && !o.trim_end_matches('/').contains(['?', '#'])
                    && o.trim_end_matches('/').matches('/').count() == 2);
            if origin_like {
                Ok(o.to_string())
            } else {
                Err(format!(
                    "--allowed-origin must be an origin like https://dash.example:8443 (no path) or *, got {o}"
                ))
            }
        })
        .collect()
}

/// `--public-url`, checked to be an http(s) URL.
pub(crate) fn public_url(u: Option<String>) -> Result<Option<String>, String> {
    match u {
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => Err(format!(
            "--public-url must start with http:// or https://, got {u}"
        )),
        u => Ok(u),
    }
}

/// Whether `--log-format` asks for JSON logs.
pub(crate) fn json_logs(format: Option<&str>) -> Result<bool, String> {
    match format {
        None | Some("text") => Ok(false),
        Some("json") => Ok(true),
        Some(other) => Err(format!("--log-format must be text or json, got {other}")),
    }
}

/// Parses `HOST` and `PORT` into a listening address.
pub(crate) fn listen_addr(host: Option<String>, port: u16) -> Result<SocketAddr, String> {
    let host = host.unwrap_or_else(|| "0.0.0.0".into());
    format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| format!("invalid --host {host}"))
}
