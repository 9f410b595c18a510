//! Command-line options, environment variables and the TOML config file.
//!
//! Precedence: flag, then `GRIDIRON_*` environment variable, then config file,
//! then the built-in default.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Internal: kill what the grid with DATA_DIR left running once the grid
    /// is gone (its pipe on stdin closes).
    #[command(hide = true)]
    Watchdog {
        /// The grid's data directory.
        data_dir: PathBuf,
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
    /// List, show or end the sessions of a running grid (its REST API: --url, --token).
    Sessions {
        /// What to do.
        #[command(subcommand)]
        command: crate::api_client::SessionsCommand,
    },
    /// List the requests waiting in a running grid's queue (its REST API: --url, --token).
    Queue {
        /// What to do.
        #[command(subcommand)]
        command: crate::api_client::QueueCommand,
    },
}

mod args;
#[cfg(test)]
mod tests;

pub(crate) use args::*;

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
    let probing = start_discovery();
    let rt = runtime()?;
    rt.block_on(async move {
        let store = gridiron_store::SqliteStore::open(&s.grid.data_dir.join("gridiron.db"))
            .map_err(|e| e.to_string())?;
        let store: Arc<dyn gridiron_store::Store> = Arc::new(store);
        gridiron_grid::recover(&s.grid.data_dir, store.as_ref()).await;
        crate::keys::warn_if_open(store.as_ref(), s.grid.require_auth, s.addr).await;
        let (found, isolation) = discover_guarded(probing, &s.grid.data_dir, &s.isolation)?;
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
            s.video.clone(),
        );
        tracing::info!(
            addr = %listener.local_addr().map_err(|e| e.to_string())?,
            max_sessions = s.grid.max_sessions,
            data_dir = %s.grid.data_dir.display(),
            "gridiron standalone listening"
        );
        let manager = gridiron_grid::Manager::start(s.grid, store, provisioner);
        manager.keep_artifacts();
        gridiron_grid::webhooks::start_for(
            manager.as_ref(),
            s.webhooks,
            format!("standalone-{}", std::process::id()),
        )?;
        gridiron_grid::serve(listener, manager, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })?;
    release_watchdog();
    tracing::info!("stopped");
    Ok(())
}

/// This process's watchdog, which kills its browsers once it is gone.
static WATCHDOG: std::sync::OnceLock<std::sync::Mutex<gridiron_provision::Watchdog>> =
    std::sync::OnceLock::new();

/// After a clean stop (every session ended): lets the watchdog go without a sweep.
pub(crate) fn release_watchdog() {
    if let Some(w) = WATCHDOG.get() {
        w.lock().unwrap_or_else(|e| e.into_inner()).release();
    }
}

/// Starts looking for the browsers and drivers of this host. Their
/// `--version`s take most of a start, so they run while the store opens.
pub(crate) fn start_discovery() -> std::thread::JoinHandle<gridiron_provision::Discovery> {
    std::thread::spawn(gridiron_provision::discover)
}

/// The browsers and drivers `probing` found, and how their sessions are
/// isolated (logged: a weaker isolation is a warning); starts the watchdog
/// that ends every browser with this process (see `gridiron_provision::guard`).
pub(crate) fn discover_guarded(
    probing: std::thread::JoinHandle<gridiron_provision::Discovery>,
    data_dir: &Path,
    settings: &gridiron_provision::IsolationSettings,
) -> Result<(gridiron_provision::Discovery, gridiron_provision::Isolation), String> {
    let mut found = probing
        .join()
        .map_err(|_| "looking for browsers failed".to_string())?;
    let me = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let isolation = gridiron_provision::Isolation::decide(settings, data_dir, &mut found.installs);
    let watchdog = gridiron_provision::Watchdog::start(&me, data_dir)
        .map_err(|e| format!("cannot start the watchdog of browsers: {e}"))?;
    // Kept (and its pipe open) until this process ends, however it ends.
    let _ = WATCHDOG.set(std::sync::Mutex::new(watchdog));
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
