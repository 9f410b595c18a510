//! The scaled-out roles and their admin commands: `hub`, `node`, `pools`, `nodes`.

use crate::cli::{
    init_logs, json_logs, listen_addr, lock_data_dir, public_url, runtime, seconds,
    shutdown_signal, StandaloneArgs,
};
use clap::{Args, Subcommand};
use gridiron_domain::events;
use gridiron_domain::launch_policy::{check_switches, LaunchAllowances};
use gridiron_domain::pool::{check_name, NodeProfile, Pool};
use gridiron_grid::cluster::{node_router, ClusterSecret, Hub, HubConfig, NodeAgent, NodeConfig};
use gridiron_store::{Cluster, NewEvent, RedisCluster};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Where the shared state lives. Its `Debug` hides the URL's password.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The Redis store shared by hubs and nodes, e.g. `redis://10.0.0.5:6379/0`.
    #[arg(long, env = "GRIDIRON_STORE")]
    pub store: String,
    /// Prefix of every key, so several grids can share one Redis.
    #[arg(long, env = "GRIDIRON_NAMESPACE", default_value = "gridiron")]
    pub namespace: String,
}

impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreArgs")
            .field("store", &self.shown())
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl StoreArgs {
    /// The store URL as logs and errors show it: without its password.
    fn shown(&self) -> String {
        gridiron_domain::redact::url_password(&self.store)
    }

    async fn connect(&self) -> Result<Arc<dyn Cluster>, String> {
        if !(self.store.starts_with("redis://") || self.store.starts_with("rediss://")) {
            return Err(format!(
                "--store must be a redis:// URL, got {}",
                self.shown()
            ));
        }
        RedisCluster::connect(&self.store, &self.namespace)
            .await
            .map(|c| Arc::new(c) as Arc<dyn Cluster>)
            // The client's own message could quote the URL it was given.
            .map_err(|e| {
                let e = e.to_string().replace(&self.store, &self.shown());
                format!("cannot reach the store at {}: {e}", self.shown())
            })
    }
}

/// The secret hubs and nodes share. Its `Debug` shows no part of it.
#[derive(Args, Clone)]
pub struct SecretArgs {
    /// Secret shared by every hub and node of the grid; nodes refuse requests without it.
    #[arg(long, env = "GRIDIRON_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: String,
}

impl std::fmt::Debug for SecretArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretArgs { cluster_secret: *** }")
    }
}

impl SecretArgs {
    fn checked(&self) -> Result<ClusterSecret, String> {
        let s = &self.cluster_secret;
        if s.len() < 8 {
            return Err("--cluster-secret must be at least 8 characters".into());
        }
        // It travels in an HTTP header.
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("--cluster-secret may only hold printable ASCII without spaces".into());
        }
        Ok(ClusterSecret::new(s.clone()))
    }
}

/// Options of `gridiron hub`.
#[derive(Args, Debug)]
pub struct HubArgs {
    /// Address to listen on [default: 0.0.0.0].
    #[arg(long, env = "GRIDIRON_HOST")]
    pub host: Option<String>,
    /// Port to listen on.
    #[arg(long, env = "GRIDIRON_PORT", default_value_t = 4444)]
    pub port: u16,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Requests that may wait in the shared queue; more are refused at once.
    #[arg(long, env = "GRIDIRON_MAX_QUEUE", default_value_t = 10_000)]
    pub max_queue: usize,
    /// Milliseconds the first webhook retry waits at most (see `gridiron standalone --help`) [default: 5000].
    #[arg(long, env = "GRIDIRON_WEBHOOK_RETRY_BASE_MS")]
    pub webhook_retry_base_ms: Option<u64>,
    /// Failed webhook attempts in a row after which a subscription is disabled [default: 20].
    #[arg(long, env = "GRIDIRON_WEBHOOK_DISABLE_AFTER")]
    pub webhook_disable_after: Option<u32>,
    /// Seconds a request may wait for a node before it fails.
    #[arg(long, env = "GRIDIRON_QUEUE_TIMEOUT", default_value_t = 300.0)]
    pub queue_timeout: f64,
    /// Seconds a node may take to start a session it took from the queue.
    #[arg(long, env = "GRIDIRON_NEW_SESSION_TIMEOUT", default_value_t = 60.0)]
    pub new_session_timeout: f64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "GRIDIRON_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// The URL clients use to reach the grid (e.g. the load balancer's), written
    /// into CDP and BiDi websocket URLs [default: from each request's headers].
    #[arg(long, env = "GRIDIRON_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds after which a silent hub's queued requests are dropped.
    #[arg(long, env = "GRIDIRON_HEARTBEAT_TTL", default_value_t = 10.0)]
    pub heartbeat_ttl: f64,
    /// Log format: `text` or `json`.
    #[arg(long, env = "GRIDIRON_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// A browser binary clients may name in `binary` (repeatable; exact path).
    #[arg(
        long = "allow-binary",
        env = "GRIDIRON_ALLOW_BINARY",
        value_delimiter = ','
    )]
    pub allow_binary: Vec<String>,
    /// A prefix of refused browser switches or options clients may use anyway
    /// (repeatable), e.g. `--allow-arg=--renderer-cmd-prefix`.
    #[arg(
        long = "allow-arg",
        env = "GRIDIRON_ALLOW_ARG",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub allow_arg: Vec<String>,
    /// Refuse requests without an API key even while no key exists (`/status` stays open).
    #[arg(long, env = "GRIDIRON_REQUIRE_AUTH", num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub require_auth: bool,
    /// PEM file of CA certificates to trust for `https://` nodes, besides the
    /// system's roots (nodes whose certificates a private CA signed).
    #[arg(long, env = "GRIDIRON_NODE_CA_FILE")]
    pub node_ca_file: Option<std::path::PathBuf>,
    /// Where the grid's artifacts are stored when in a bucket
    /// (`s3://bucket/prefix`, as the nodes'); without it, nodes keep them and
    /// the hub forwards reads to them.
    #[arg(long, env = "GRIDIRON_ARTIFACTS_URL")]
    pub artifacts_url: Option<String>,
    /// A web origin (`https://dash.example`, or `*`) whose pages may call the
    /// grid (repeatable); requests with any other `Origin` header are refused.
    #[arg(
        long = "allowed-origin",
        env = "GRIDIRON_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origin: Vec<String>,
    /// Largest new-session request (`POST /session` body, `/cdp` query), in bytes.
    #[arg(long, env = "GRIDIRON_MAX_NEW_SESSION_BYTES", default_value_t = 1024 * 1024)]
    pub max_new_session_bytes: usize,
    /// Seconds a client may take to send a request's headers.
    #[arg(long, env = "GRIDIRON_HEADER_READ_TIMEOUT", default_value_t = 10.0)]
    pub header_read_timeout: f64,
    /// Client connections served at once; more wait to be accepted.
    #[arg(long, env = "GRIDIRON_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
}

/// Options of `gridiron node`: those of `standalone` (its slots, timeouts,
/// browsers), plus how it joins the grid.
#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    pub grid: StandaloneArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// The URL hubs reach this node at, e.g. `http://10.0.0.7:5555`.
    #[arg(long, env = "GRIDIRON_ADVERTISE_URL")]
    pub advertise_url: String,
    /// A pool this node joins (repeatable); it then takes that pool's labels.
    #[arg(long = "pool", env = "GRIDIRON_POOLS", value_delimiter = ',')]
    pub pools: Vec<String>,
    /// A label of this node, `KEY=VALUE` (repeatable); sessions target it with
    /// `gridiron:options.nodeLabels`.
    #[arg(long = "label", env = "GRIDIRON_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Seconds without a heartbeat after which the node counts as lost.
    #[arg(long, env = "GRIDIRON_HEARTBEAT_TTL", default_value_t = 10.0)]
    pub heartbeat_ttl: f64,
    /// Seconds a drain (SIGTERM, `gridiron nodes drain`) waits for running sessions.
    #[arg(long, env = "GRIDIRON_DRAIN_TIMEOUT", default_value_t = 300.0)]
    pub drain_timeout: f64,
    /// PEM certificate chain to serve TLS with (with `--tls-key`); advertise
    /// an `https://` URL then. Without it the node serves plain HTTP.
    #[arg(long, env = "GRIDIRON_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "GRIDIRON_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// `gridiron pools ...`
#[derive(Subcommand, Debug)]
pub enum PoolsCommand {
    /// Create (or replace) a pool.
    Create {
        /// Pool name.
        name: String,
        /// Default browserName of its sessions.
        #[arg(long)]
        browser: Option<String>,
        /// Default browserVersion (prefix) of its sessions.
        #[arg(long)]
        version: Option<String>,
        /// Browser argument added to its sessions (repeatable), e.g. `--arg=--lang=de`.
        #[arg(long = "arg", allow_hyphen_values = true)]
        args: Vec<String>,
        /// Label `KEY=VALUE` of its nodes and sessions (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Sessions the pool may run at once over all its nodes.
        #[arg(long)]
        max_concurrency: Option<u32>,
        /// Warm sessions each node of the pool keeps, started with the
        /// pool's defaults, e.g. `chrome=2` (a node's own --warm wins).
        #[arg(long)]
        warm: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        /// A prefix of refused browser switches this pool may use anyway
        /// (repeatable); hubs and nodes must allow it too.
        #[arg(
            long = "allow-arg",
            env = "GRIDIRON_ALLOW_ARG",
            value_delimiter = ',',
            allow_hyphen_values = true
        )]
        allow_arg: Vec<String>,
    },
    /// List pools and the sessions each runs.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a pool.
    Delete {
        /// Pool name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `gridiron nodes ...`
#[derive(Subcommand, Debug)]
pub enum NodesCommand {
    /// List registered nodes.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Drain a node: it takes no new sessions, lets running ones finish, then leaves.
    Drain {
        /// Node id (see `gridiron nodes list`).
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn labels(pairs: &[String]) -> Result<BTreeMap<String, String>, String> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("label must be KEY=VALUE, got {p}")),
        })
        .collect()
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Runs `gridiron hub` until Ctrl-C or SIGTERM.
pub fn run_hub(args: HubArgs) -> Result<(), String> {
    init_logs(json_logs(args.log_format.as_deref())?);
    let secret = args.secret.checked()?;
    let addr = listen_addr(args.host.clone(), args.port)?;
    let webhooks =
        crate::cli::webhook_settings(args.webhook_retry_base_ms, args.webhook_disable_after)?;
    let cfg = HubConfig {
        id: format!("hub-{}", short_id()),
        max_queue: args.max_queue,
        queue_timeout: seconds("queue-timeout", Some(args.queue_timeout), Duration::ZERO)?,
        start_timeout: seconds(
            "new-session-timeout",
            Some(args.new_session_timeout),
            Duration::ZERO,
        )?,
        max_body_bytes: args.max_body_bytes,
        public_url: public_url(args.public_url.clone())?,
        secret,
        heartbeat_ttl: seconds("heartbeat-ttl", Some(args.heartbeat_ttl), Duration::ZERO)?,
        launch_allowances: LaunchAllowances::new(
            args.allow_binary.clone(),
            args.allow_arg.clone(),
        )?,
        require_auth: args.require_auth,
        node_ca_file: args.node_ca_file.clone(),
        artifacts_url: args.artifacts_url.clone(),
        allowed_origins: crate::cli::allowed_origins(&args.allowed_origin)?,
        max_new_session_bytes: crate::cli::at_least_one(
            "max-new-session-bytes",
            Some(args.max_new_session_bytes),
            0,
        )?,
    };
    let limits = gridiron_grid::ServeLimits {
        header_read_timeout: seconds(
            "header-read-timeout",
            Some(args.header_read_timeout),
            Duration::ZERO,
        )?,
        max_connections: crate::cli::at_least_one(
            "max-connections",
            Some(args.max_connections),
            0,
        )?,
    };
    runtime()?.block_on(async move {
        let cluster = args.store.connect().await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        crate::keys::warn_if_open(cluster.sessions().as_ref(), args.require_auth, addr).await;
        let hub_id = cfg.id.clone();
        let hub = Hub::start(cluster, cfg).await?;
        // Each hub sends webhooks; the consumer group has each event fanned out by one.
        gridiron_grid::webhooks::start_for(hub.as_ref(), webhooks, hub_id)?;
        tracing::info!(%addr, store = %args.store.shown(), "gridiron hub listening");
        let app = hub.clone().router();
        let stop = async move {
            shutdown_signal().await;
            hub.leave().await;
        };
        gridiron_grid::serve_app_with(listener, app, stop, limits)
            .await
            .map_err(|e| e.to_string())
    })?;
    tracing::info!("stopped");
    Ok(())
}

/// Runs `gridiron node`: SIGTERM drains it first; Ctrl-C ends its sessions at once.
pub fn run_node(mut args: NodeArgs) -> Result<(), String> {
    let port = *args.grid.port.get_or_insert(5555);
    args.grid
        .data_dir
        .get_or_insert_with(|| crate::cli::default_data_dir().join(format!("node-{port}")));
    let secret = args.secret.checked()?;
    let url = args.advertise_url.trim_end_matches('/').to_string();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "--advertise-url must be an http:// or https:// URL, got {url}"
        ));
    }
    // An https:// node either serves TLS itself or sits behind a terminator.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            if !url.starts_with("https://") {
                return Err("--tls-cert needs an https:// --advertise-url".into());
            }
            Some(gridiron_grid::tls::server_config(cert, key)?)
        }
        _ => None,
    };
    for p in &args.pools {
        check_name(p).map_err(|e| e.message)?;
    }
    let own_labels = labels(&args.labels)?;
    let ttl = seconds("heartbeat-ttl", Some(args.heartbeat_ttl), Duration::ZERO)?;
    let drain = seconds("drain-timeout", Some(args.drain_timeout), Duration::ZERO)?;
    let s = crate::cli::resolve(args.grid)?;
    init_logs(s.json_logs);
    let _lock = lock_data_dir(&s.grid.data_dir)?;
    let probing = crate::cli::start_discovery();
    let mut grid = s.grid;
    // A node never queues: it only takes requests it has a free slot for.
    grid.max_queue = grid.max_sessions;
    runtime()?.block_on(async move {
        let cluster = args.store.connect().await?;
        let mut profile = NodeProfile {
            pools: args.pools.clone(),
            labels: BTreeMap::new(),
        };
        for p in &args.pools {
            match cluster.pool(p).await.map_err(|e| e.to_string())? {
                Some(pool) => {
                    // The first pool that keeps sessions warm sets this node's,
                    // with its defaults, unless the node has its own --warm.
                    if grid.warm.is_empty() && grid.warm_pool.is_none() {
                        if let Some(w) = &pool.warm {
                            grid.warm = gridiron_domain::warm::WarmCounts::parse(w)?;
                            grid.warm_pool = Some(pool.clone());
                        }
                    }
                    profile.labels.extend(pool.labels)
                }
                None => {
                    return Err(format!(
                        "there is no pool named {p} (gridiron pools create {p})"
                    ))
                }
            }
        }
        profile.labels.extend(own_labels);
        gridiron_grid::recover_processes(&grid.data_dir).await;
        let (found, isolation) =
            crate::cli::discover_guarded(probing, &grid.data_dir, &s.isolation)?;
        if found.installs.is_empty() {
            tracing::warn!("no browser with its driver was found; run `gridiron doctor`");
        }
        let listener = tokio::net::TcpListener::bind(s.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", s.addr))?;
        let provisioner = gridiron_provision::LocalProvisioner::new(
            found.installs,
            &grid.data_dir,
            grid.prewarm,
            isolation,
            s.video.clone(),
        );
        let store: Arc<dyn gridiron_store::Store> = cluster.sessions();
        let manager = gridiron_grid::Manager::start(grid, store, provisioner);
        let cfg = NodeConfig {
            id: format!("node-{}", short_id()),
            advertise_url: url,
            heartbeat_ttl: ttl,
            drain_timeout: drain,
            profile,
        };
        let agent = match NodeAgent::start(cluster, manager.clone(), cfg).await {
            Ok(a) => a,
            Err(e) => {
                manager.shutdown().await;
                return Err(format!("cannot register with the store: {e}"));
            }
        };
        tracing::info!(addr = %s.addr, node = agent.id(), "gridiron node listening");
        let app = node_router(manager.clone(), secret);
        let limits = manager.config.serve_limits();
        let stop = async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).ok();
            let terminated = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminated => {
                    tracing::info!("SIGTERM: draining");
                    tokio::select! {
                        _ = agent.clone().drain() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                _ = agent.drained() => {}
            }
            tracing::info!("node leaving: ending sessions");
            agent.stop_taking_work();
            manager.shutdown().await;
            agent.leave().await;
        };
        match tls {
            Some(tls) => gridiron_grid::serve_app_tls(listener, tls, app, stop, limits).await,
            None => gridiron_grid::serve_app_with(listener, app, stop, limits).await,
        }
        .map_err(|e| e.to_string())
    })?;
    crate::cli::release_watchdog();
    tracing::info!("stopped");
    Ok(())
}

/// Runs `gridiron pools ...`.
pub fn run_pools(cmd: PoolsCommand) -> Result<(), String> {
    runtime()?.block_on(async move {
        match cmd {
            PoolsCommand::Create {
                name,
                browser,
                version,
                args,
                labels: l,
                max_concurrency,
                warm,
                store,
                allow_arg,
            } => {
                check_name(&name).map_err(|e| e.message)?;
                let allow = LaunchAllowances::new(Vec::new(), allow_arg)?;
                check_switches("--arg", &args, &allow).map_err(|e| e.message)?;
                if max_concurrency == Some(0) {
                    return Err("--max-concurrency must be at least 1".into());
                }
                if let Some(w) = &warm {
                    gridiron_domain::warm::WarmCounts::parse(w)?;
                }
                let pool = Pool {
                    name: name.clone(),
                    browser,
                    version,
                    args,
                    labels: labels(&l)?,
                    max_concurrency,
                    warm,
                };
                let cluster = store.connect().await?;
                cluster.put_pool(&pool).await.map_err(|e| e.to_string())?;
                crate::keys::record(
                    cluster.as_ref(),
                    NewEvent::now(events::POOL_CHANGED)
                        .with("pool", &name)
                        .with("change", "saved"),
                )
                .await;
                println!("pool {name} saved");
            }
            PoolsCommand::List { store } => {
                let pools = store
                    .connect()
                    .await?
                    .pools()
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "{:<20} {:<10} {:<10} {:>8} {:>8}  ARGS / LABELS",
                    "NAME", "BROWSER", "VERSION", "RUNNING", "MAX"
                );
                for (p, running) in pools {
                    let max = p
                        .max_concurrency
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| "-".into());
                    let labels: Vec<String> =
                        p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!(
                        "{:<20} {:<10} {:<10} {:>8} {:>8}  {} {}",
                        p.name,
                        p.browser.as_deref().unwrap_or("-"),
                        p.version.as_deref().unwrap_or("-"),
                        running,
                        max,
                        p.args.join(" "),
                        labels.join(",")
                    );
                }
            }
            PoolsCommand::Delete { name, store } => {
                let cluster = store.connect().await?;
                if !cluster
                    .delete_pool(&name)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!("there is no pool named {name}"));
                }
                crate::keys::record(
                    cluster.as_ref(),
                    NewEvent::now(events::POOL_CHANGED)
                        .with("pool", &name)
                        .with("change", "deleted"),
                )
                .await;
                println!("pool {name} deleted");
            }
        }
        Ok(())
    })
}

/// Runs `gridiron nodes ...`.
pub fn run_nodes(cmd: NodesCommand) -> Result<(), String> {
    runtime()?.block_on(async move {
        match cmd {
            NodesCommand::List { store } => {
                let nodes = store
                    .connect()
                    .await?
                    .nodes()
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "{:<18} {:<9} {:>5} {:>5}  {:<28} POOLS",
                    "ID", "STATE", "USED", "MAX", "URL"
                );
                for n in nodes {
                    let state = if !n.alive {
                        "down"
                    } else if n.draining {
                        "draining"
                    } else {
                        "up"
                    };
                    println!(
                        "{:<18} {:<9} {:>5} {:>5}  {:<28} {}",
                        n.info.id,
                        state,
                        n.used,
                        n.info.max_sessions,
                        n.info.url,
                        n.info.profile.pools.join(",")
                    );
                }
            }
            NodesCommand::Drain { id, store } => {
                if !store
                    .connect()
                    .await?
                    .drain_node(&id)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!("there is no live node {id}"));
                }
                println!("node {id} is draining");
            }
        }
        Ok(())
    })
}
