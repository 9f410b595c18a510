//! `gridiron keys create|list|revoke`: API keys, in a standalone grid's
//! data dir (`--data-dir`, its `gridiron.db`) or in the Redis store of hubs
//! and nodes (`--store`, `--namespace`). A running grid sees the change
//! within a second.

use clap::{Args, Subcommand};
use gridiron_domain::auth::{check_key_name, hash_token, ApiKey, Role};
use gridiron_domain::events;
use gridiron_store::Store;
use gridiron_store::{EventLog, NewEvent};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// What to do with API keys.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a key and print its token (shown this once; only its hash is kept).
    Create {
        /// The key's name (letters, digits, `.`, `_`, `-`); the user name of Basic auth.
        name: String,
        /// `admin` (sees and may end every session) or `user` (only its own).
        #[arg(long, default_value = "user")]
        role: String,
        /// Sessions the key may run at once; its further requests wait in the queue.
        #[arg(long)]
        max_sessions: Option<u32>,
        /// Requests per second the key may make; more are answered 429.
        #[arg(long)]
        rate: Option<f64>,
        #[command(flatten)]
        at: KeyStoreArgs,
    },
    /// List the keys: names, roles, limits, when made (never tokens).
    List {
        #[command(flatten)]
        at: KeyStoreArgs,
    },
    /// Delete a key: requests with its token are refused from then on.
    Revoke {
        /// The key's name.
        name: String,
        #[command(flatten)]
        at: KeyStoreArgs,
    },
}

/// Which grid's keys: a standalone data dir, or a Redis store.
#[derive(Args, Debug)]
pub struct KeyStoreArgs {
    /// The standalone grid's data dir [default: ~/.local/share/gridiron].
    #[arg(long, env = "GRIDIRON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The Redis store of a hub-and-node grid, e.g. `redis://10.0.0.5:6379/0`.
    #[arg(long, env = "GRIDIRON_STORE")]
    pub store: Option<String>,
    /// Prefix of the grid's keys in Redis.
    #[arg(long, env = "GRIDIRON_NAMESPACE", default_value = "gridiron")]
    pub namespace: String,
}

impl KeyStoreArgs {
    async fn open(&self) -> Result<Arc<dyn Store>, String> {
        if let Some(url) = &self.store {
            return redis_store(url, &self.namespace).await;
        }
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(crate::cli::default_data_dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", dir.display()))?;
        let store = gridiron_store::SqliteStore::open(&dir.join("gridiron.db"))
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(store))
    }
}

#[cfg(feature = "redis")]
async fn redis_store(url: &str, namespace: &str) -> Result<Arc<dyn Store>, String> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(format!("--store must be a redis:// URL, got {url}"));
    }
    let store = gridiron_store::RedisStore::connect(url, namespace)
        .await
        .map_err(|e| format!("cannot reach the store at {url}: {e}"))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "redis"))]
async fn redis_store(_url: &str, _namespace: &str) -> Result<Arc<dyn Store>, String> {
    Err("this gridiron was built without Redis support".into())
}

/// Runs `gridiron keys ...`.
pub fn run(cmd: KeysCommand) -> Result<(), String> {
    crate::cli::runtime()?.block_on(async move {
        match cmd {
            KeysCommand::Create {
                name,
                role,
                max_sessions,
                rate,
                at,
            } => {
                check_key_name(&name)?;
                let role = Role::parse(&role)
                    .ok_or_else(|| format!("--role must be admin or user, got {role}"))?;
                if max_sessions == Some(0) {
                    return Err("--max-sessions must be at least 1".into());
                }
                if let Some(r) = rate {
                    if !(r.is_finite() && r > 0.0) {
                        return Err(format!("--rate must be a positive number, got {r}"));
                    }
                }
                let token = gridiron_store::new_token()?;
                let key = ApiKey {
                    name: name.clone(),
                    role,
                    token_hash: hash_token(&token),
                    max_sessions,
                    rate,
                    created_at: gridiron_store::now_ms(),
                };
                let store = at.open().await?;
                if !store.create_key(key).await.map_err(|e| e.to_string())? {
                    return Err(format!("a key named {name} exists already"));
                }
                record(
                    store.as_ref(),
                    NewEvent::now(events::KEY_CREATED)
                        .with("key", &name)
                        .with("role", role.as_str()),
                )
                .await;
                eprintln!(
                    "created key {name} ({}); its token, shown only now:",
                    role.as_str()
                );
                println!("{token}");
                Ok(())
            }
            KeysCommand::List { at } => {
                let keys = at.open().await?.keys().await.map_err(|e| e.to_string())?;
                println!(
                    "{:<24} {:<6} {:>12} {:>10}  CREATED (UTC)",
                    "NAME", "ROLE", "MAX-SESSIONS", "RATE/S"
                );
                for k in keys {
                    let limit = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                    println!(
                        "{:<24} {:<6} {:>12} {:>10}  {}",
                        k.name,
                        k.role.as_str(),
                        limit(k.max_sessions.map(|m| m.to_string())),
                        limit(k.rate.map(|r| r.to_string())),
                        utc(k.created_at)
                    );
                }
                Ok(())
            }
            KeysCommand::Revoke { name, at } => {
                let store = at.open().await?;
                if store.revoke_key(&name).await.map_err(|e| e.to_string())? {
                    record(
                        store.as_ref(),
                        NewEvent::now(events::KEY_REVOKED).with("key", &name),
                    )
                    .await;
                    eprintln!("revoked key {name}");
                    Ok(())
                } else {
                    Err(format!("there is no key named {name}"))
                }
            }
        }
    })
}

/// Unix ms as `YYYY-MM-DD HH:MM:SS` in UTC (civil-from-days, no time zone data needed).
pub(crate) fn utc(ms: i64) -> String {
    let c = gridiron_domain::civil::Civil::from_unix_ms(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Warns at start when the grid is open to anyone who can reach it: no key
/// exists, none is required, and it listens beyond this machine.
pub(crate) async fn warn_if_open(store: &dyn Store, require_auth: bool, addr: SocketAddr) {
    if require_auth || addr.ip().is_loopback() {
        return;
    }
    if let Ok(keys) = store.keys().await {
        if keys.is_empty() {
            tracing::warn!(
                %addr,
                "no API key exists: anyone who can reach this address can use, list and end every session; \
                 create one with `gridiron keys create NAME --role admin`, or pass --require-auth"
            );
        }
    }
}

/// Records a change the CLI made in the grid's event log; the change stands
/// even if the event cannot be recorded.
pub(crate) async fn record(log: &dyn EventLog, event: NewEvent) {
    if let Err(e) = log.append(event).await {
        eprintln!("warning: could not record the change in the event log: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00");
    }
}
