//! Command-line options, environment variables and the TOML config file.
//!
//! Precedence: flag, then `GRIDIRON_*` environment variable, then config file,
//! then the built-in default.

use clap::{Args, Parser, Subcommand};
use gridiron_domain::launch_policy::LaunchAllowances;
use gridiron_grid::GridConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A self-hosted browser grid for W3C WebDriver clients.
#[derive(Parser, Debug)]
#[command(name = "gridiron", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole grid in one process: W3C endpoint, embedded store, local browsers.
    Standalone(Box<StandaloneArgs>),
    /// List the browsers and drivers found on this host and what is missing.
    Doctor,
    /// Internal: run PROGRAM so that it dies with its parent (how browsers are started).
    #[command(hide = true)]
    ExecGuarded {
        /// The browser binary.
        program: PathBuf,
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Run a hub: accepts clients, queues new sessions for nodes, routes commands (scaled-out grid).
    #[cfg(feature = "redis")]
    Hub(Box<crate::roles::HubArgs>),
    /// Run a node: owns the browsers of this host and takes work from the hubs' queue.
    #[cfg(feature = "redis")]
    #[command(
        after_help = "A node's defaults differ from standalone's: --port 5555, --data-dir \
                      ~/.local/share/gridiron/node-PORT. --max-queue and --queue-timeout do not \
                      apply: requests wait in the hubs' shared queue. SIGTERM drains the node; \
                      Ctrl-C stops it at once."
    )]
    Node(Box<crate::roles::NodeArgs>),
    /// Manage work pools of a scaled-out grid.
    #[cfg(feature = "redis")]
    Pools {
        /// What to do.
        #[command(subcommand)]
        command: crate::roles::PoolsCommand,
    },
    /// List or drain the nodes of a scaled-out grid.
    #[cfg(feature = "redis")]
    Nodes {
        /// What to do.
        #[command(subcommand)]
        command: crate::roles::NodesCommand,
    },
    /// Create, list or revoke API keys (standalone: --data-dir; hubs and nodes: --store).
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: crate::keys::KeysCommand,
    },
}

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
}

impl StandaloneArgs {
    /// Fills options not given on the command line or environment from `file`.
    fn or(self, file: StandaloneArgs) -> StandaloneArgs {
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
    Ok(Standalone {
        addr,
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

/// A runtime on one thread: the grid only moves bytes, and on small hosts
/// handing work between threads costs more per command than it gains.
/// The async runtime of every role: one worker thread per core, unless
/// `GRIDIRON_WORKER_THREADS` says otherwise (`1` runs everything on the main
/// thread). Nothing blocks it: process sweeps and `/proc` reads run on the
/// blocking pool.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    let workers = match std::env::var("GRIDIRON_WORKER_THREADS") {
        Ok(v) => Some(
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    format!("GRIDIRON_WORKER_THREADS must be a positive number, got {v:?}")
                })?,
        ),
        Err(_) => None,
    };
    let mut builder = if workers == Some(1) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = workers {
            b.worker_threads(n);
        }
        b
    };
    builder.enable_all().build().map_err(|e| e.to_string())
}

pub(crate) fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRIDIRON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        fmt.json().init();
    } else {
        fmt.init();
    }
}

/// Holds an exclusive lock on the data dir, so two grids never share one
/// (each would kill the other's processes as leftovers).
pub(crate) fn lock_data_dir(dir: &Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join("gridiron.lock");
    let f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "another gridiron process uses the data dir {} (choose another with --data-dir)",
            dir.display()
        ));
    }
    // Before the store is opened: its files are created private.
    gridiron_provision::isolation::private_files();
    gridiron_provision::isolation::protect_data_dir(dir)
        .map_err(|e| format!("cannot protect the data dir {}: {e}", dir.display()))?;
    Ok(f)
}

/// Runs `gridiron standalone` until Ctrl-C or SIGTERM.
pub fn run_standalone(args: StandaloneArgs) -> Result<(), String> {
    let s = resolve(args)?;
    init_logs(s.json_logs);
    let _lock = lock_data_dir(&s.grid.data_dir)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let store = gridiron_store::SqliteStore::open(&s.grid.data_dir.join("gridiron.db"))
            .map_err(|e| e.to_string())?;
        let store: Arc<dyn gridiron_store::Store> = Arc::new(store);
        gridiron_grid::recover(&s.grid.data_dir, store.as_ref()).await;
        crate::keys::warn_if_open(store.as_ref(), s.grid.require_auth, s.addr).await;
        let (found, isolation) = discover_guarded(&s.grid.data_dir, &s.isolation)?;
        if found.installs.is_empty() {
            tracing::warn!("no browser with its driver was found; run `gridiron doctor`");
        }
        for i in &found.installs {
            tracing::info!(
                browser = i.stereotype.kind.driver_browser_name(),
                version = %i.stereotype.version,
                driver = %i.driver.display(),
                "browser available"
            );
        }
        let listener = tokio::net::TcpListener::bind(s.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", s.addr))?;
        let provisioner = gridiron_provision::LocalProvisioner::new(
            found.installs,
            &s.grid.data_dir,
            s.grid.prewarm,
            isolation,
        );
        tracing::info!(
            addr = %listener.local_addr().map_err(|e| e.to_string())?,
            max_sessions = s.grid.max_sessions,
            data_dir = %s.grid.data_dir.display(),
            "gridiron standalone listening"
        );
        let manager = gridiron_grid::Manager::start(s.grid, store, provisioner);
        gridiron_grid::serve(listener, manager, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })?;
    tracing::info!("stopped");
    Ok(())
}

/// The browsers and drivers of this host, each browser started so that it
/// dies with its driver (see `gridiron_provision::guard`), and how their
/// sessions are isolated (logged: a weaker isolation is a warning).
pub(crate) fn discover_guarded(
    data_dir: &Path,
    settings: &gridiron_provision::IsolationSettings,
) -> Result<(gridiron_provision::Discovery, gridiron_provision::Isolation), String> {
    let mut found = gridiron_provision::discover();
    let mut me =
        std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let isolation =
        gridiron_provision::Isolation::decide(settings, data_dir, &mut found.installs, &mut me);
    gridiron_provision::guard_browsers(&mut found.installs, &me, data_dir)
        .map_err(|e| format!("cannot write browser launch scripts: {e}"))?;
    match &isolation.uids {
        Some(uids) => tracing::info!(
            uids = %uids,
            chromium_sandbox = isolation.chromium_sandbox,
            "sessions run under user ids of their own"
        ),
        None => tracing::info!(
            chromium_sandbox = isolation.chromium_sandbox,
            "sessions share the grid's user"
        ),
    }
    for note in &isolation.notes {
        tracing::warn!("isolation: {note}");
    }
    Ok((found, isolation))
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
