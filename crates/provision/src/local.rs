//! The local provisioner: every session gets its own driver process, browser
//! profile and temp directory on this host.
//!
//! Starting a driver costs tens of milliseconds, so one spare driver per
//! browser is kept started ahead of demand. It serves nobody until a session
//! claims it, and the browser itself is still started fresh per session.

use crate::discovery::BrowserInstall;
use crate::driver::DriverProcess;
use crate::error::ProvisionError;
use crate::isolation::Isolation;
use crate::process::{Provisioner, SessionHandle};
use async_trait::async_trait;
use gridiron_domain::Stereotype;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Starts and stops session drivers on this host.
pub struct LocalProvisioner {
    /// Itself, for the tasks that start spares.
    me: Weak<LocalProvisioner>,
    installs: Vec<BrowserInstall>,
    /// Root of the grid's files; also the marker every child process carries.
    data_dir: PathBuf,
    /// Keep a spare driver per browser.
    prewarm: bool,
    spares: Mutex<HashMap<usize, DriverProcess>>,
    /// Browsers whose spare is being started, so only one start runs at a time.
    warming: Mutex<HashMap<usize, bool>>,
    closed: AtomicBool,
    /// How sessions are kept from the grid's secrets and from each other.
    isolation: Isolation,
}

impl LocalProvisioner {
    /// A provisioner for `installs`, with session files under `data_dir/sessions`,
    /// isolating sessions as `isolation` says.
    pub fn new(
        installs: Vec<BrowserInstall>,
        data_dir: &Path,
        prewarm: bool,
        isolation: Isolation,
    ) -> Arc<Self> {
        let p = Arc::new_cyclic(|me| LocalProvisioner {
            me: me.clone(),
            installs,
            data_dir: data_dir.to_path_buf(),
            prewarm,
            spares: Mutex::default(),
            warming: Mutex::default(),
            closed: AtomicBool::new(false),
            isolation,
        });
        for i in 0..p.installs.len() {
            p.replenish(i);
        }
        p
    }

    async fn spawn(&self, install: usize) -> Result<DriverProcess, ProvisionError> {
        let (inst, id, dir) = self.new_session_files(install)?;
        DriverProcess::spawn(inst, &id, &dir, &self.data_dir, &self.isolation).await
    }

    /// The browser, a fresh session id and that session's directory.
    fn new_session_files(
        &self,
        install: usize,
    ) -> Result<(&BrowserInstall, String, PathBuf), ProvisionError> {
        let inst = self
            .installs
            .get(install)
            .ok_or(ProvisionError::UnknownBrowser(install))?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.sessions_dir().join(&id);
        Ok((inst, id, dir))
    }

    fn lock_spares(&self) -> std::sync::MutexGuard<'_, HashMap<usize, DriverProcess>> {
        self.spares.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Provisioner for LocalProvisioner {
    fn stereotypes(&self) -> Vec<Stereotype> {
        self.installs.iter().map(|i| i.stereotype.clone()).collect()
    }

    fn sessions_dir(&self) -> PathBuf {
        self.data_dir.join("sessions")
    }

    fn chromium_sandbox(&self) -> bool {
        self.isolation.chromium_sandbox
    }

    async fn start_driver(&self, install: usize) -> Result<SessionHandle, ProvisionError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(ProvisionError::ShuttingDown);
        }
        // The replacement spare is started later (`replenish`), so it does not compete
        // for CPU with the browser this session is about to start.
        let spare = self.lock_spares().remove(&install);
        if let Some(d) = spare {
            if !d.has_exited() {
                return Ok(Arc::new(d));
            }
            d.stop().await;
        }
        Ok(Arc::new(self.spawn(install).await?))
    }

    async fn start_browser(
        &self,
        install: usize,
        args: Vec<String>,
        headless: bool,
    ) -> Result<SessionHandle, ProvisionError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(ProvisionError::ShuttingDown);
        }
        let (inst, id, dir) = self.new_session_files(install)?;
        let defaults = gridiron_domain::capabilities::LaunchDefaults {
            headless,
            profile_dir: Some(dir.join("profile").to_string_lossy().into_owned()),
            sandbox: self.isolation.chromium_sandbox,
            download_dir: None,
        };
        let mut args = gridiron_domain::capabilities::chromium_args(args, &defaults);
        args.push("--remote-debugging-port=0".into());
        args.push("about:blank".into());
        let browser =
            DriverProcess::spawn_browser(inst, &args, &id, &dir, &self.data_dir, &self.isolation)
                .await?;
        Ok(Arc::new(browser))
    }

    fn replenish(&self, install: usize) {
        // geckodriver's BiDi port is fixed when it starts; a spare could find it taken later.
        let chromium = self
            .installs
            .get(install)
            .is_some_and(|i| i.stereotype.kind == gridiron_domain::BrowserKind::Chromium);
        if !self.prewarm || !chromium || self.closed.load(Ordering::SeqCst) {
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        {
            let mut warming = self.warming.lock().unwrap_or_else(|e| e.into_inner());
            if warming.get(&install).copied().unwrap_or(false)
                || self.lock_spares().contains_key(&install)
            {
                return;
            }
            warming.insert(install, true);
        }
        tokio::spawn(async move {
            let started = me.spawn(install).await;
            me.warming
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(install, false);
            match started {
                Ok(d) => {
                    // Checked under the lock that `close` drains, so no spare slips past it.
                    let rejected = {
                        let mut spares = me.lock_spares();
                        if me.closed.load(Ordering::SeqCst) {
                            Some(d)
                        } else {
                            spares.insert(install, d)
                        }
                    };
                    if let Some(old) = rejected {
                        old.stop().await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not start a spare driver"),
            }
        });
    }

    async fn close(&self) {
        let spares: Vec<DriverProcess> = {
            let mut spares = self.lock_spares();
            self.closed.store(true, Ordering::SeqCst);
            spares.drain().map(|(_, d)| d).collect()
        };
        for d in spares {
            d.stop().await;
        }
    }
}
