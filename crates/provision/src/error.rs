//! Why starting a session's processes failed.

use crate::driver::DriverExit;
use gridiron_domain::{GridError, Origin};
use std::path::PathBuf;
use std::time::Duration;

/// A failure to start (or to prepare) a driver or browser process.
#[derive(Debug)]
pub enum ProvisionError {
    /// The provisioner is closed: the grid is shutting down.
    ShuttingDown,
    /// No browser with this index in the provisioner's catalog.
    UnknownBrowser(usize),
    /// The session's directories could not be created.
    Files {
        /// The directory that could not be created.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The program could not be started at all.
    Spawn {
        /// The program that failed to start.
        program: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// No free port could be found for a websocket.
    NoFreePort(std::io::Error),
    /// The process exited before it listened.
    ExitedEarly {
        /// How it ended, if known.
        exit: Option<DriverExit>,
        /// Its last lines of output.
        output: String,
    },
    /// The process closed its output without saying where it listens.
    ClosedOutput {
        /// Its last lines of output.
        output: String,
    },
    /// The process did not say where it listens in time.
    DidNotListen {
        /// How long it was given.
        waited: Duration,
        /// Its last lines of output.
        output: String,
    },
    /// A recorded session's X display or recorder could not be started (or
    /// this provisioner cannot record).
    Recording(String),
}

impl ProvisionError {
    /// Whether trying again (with a fresh process) may succeed: process
    /// failures may be transient, configuration and shutdown are not.
    pub fn retryable(&self) -> bool {
        match self {
            ProvisionError::ShuttingDown
            | ProvisionError::UnknownBrowser(_)
            | ProvisionError::Files { .. } => false,
            ProvisionError::Recording(_) => true,
            ProvisionError::Spawn { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            ProvisionError::NoFreePort(_)
            | ProvisionError::ExitedEarly { .. }
            | ProvisionError::ClosedOutput { .. }
            | ProvisionError::DidNotListen { .. } => true,
        }
    }
}

/// `": output"` when there is output to show.
fn with_output(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!(": {output}")
    }
}

impl std::fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProvisionError::ShuttingDown => write!(f, "the grid is shutting down"),
            ProvisionError::UnknownBrowser(i) => write!(f, "no browser #{i}"),
            ProvisionError::Files { path, source } => {
                write!(f, "cannot create {}: {source}", path.display())
            }
            ProvisionError::Spawn { program, source } => {
                write!(f, "cannot start {}: {source}", program.display())
            }
            ProvisionError::NoFreePort(e) => write!(f, "no free port: {e}"),
            ProvisionError::ExitedEarly { exit, output } => {
                let status = exit.map(|e| e.to_string()).unwrap_or_default();
                write!(
                    f,
                    "driver exited before listening ({status}){}",
                    with_output(output)
                )
            }
            ProvisionError::ClosedOutput { output } => write!(
                f,
                "driver closed its output before listening{}",
                with_output(output)
            ),
            ProvisionError::DidNotListen { waited, output } => write!(
                f,
                "driver did not listen within {waited:?}{}",
                with_output(output)
            ),
            ProvisionError::Recording(why) => write!(f, "cannot record the session: {why}"),
        }
    }
}

impl std::error::Error for ProvisionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProvisionError::Files { source, .. } | ProvisionError::Spawn { source, .. } => {
                Some(source)
            }
            ProvisionError::NoFreePort(e) => Some(e),
            _ => None,
        }
    }
}

/// Every provisioning failure is `session not created`: the grid's own when
/// it refused, the driver's when a process failed.
impl From<ProvisionError> for GridError {
    fn from(e: ProvisionError) -> Self {
        let origin = match e {
            ProvisionError::ShuttingDown
            | ProvisionError::UnknownBrowser(_)
            | ProvisionError::Files { .. }
            | ProvisionError::NoFreePort(_)
            | ProvisionError::Recording(_) => Origin::Grid,
            _ => Origin::Driver,
        };
        GridError::not_created(
            origin,
            format!("the session's processes failed to start: {e}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridiron_domain::ErrorCode;
    use std::error::Error;

    #[test]
    fn errors_keep_their_source_and_say_if_retrying_helps() {
        let missing = ProvisionError::Spawn {
            program: "/nowhere/chromedriver".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(!missing.retryable());
        assert!(missing.source().is_some());
        let early = ProvisionError::ExitedEarly {
            exit: Some(DriverExit {
                code: Some(1),
                signal: None,
            }),
            output: "boom".into(),
        };
        assert!(early.retryable());
        assert_eq!(
            early.to_string(),
            "driver exited before listening (exit code 1): boom"
        );
        assert!(!ProvisionError::ShuttingDown.retryable());
    }

    #[test]
    fn every_error_is_session_not_created_with_its_origin() {
        let g = GridError::from(ProvisionError::ShuttingDown);
        assert_eq!(
            (g.code, g.origin),
            (ErrorCode::SessionNotCreated, Origin::Grid)
        );
        let g = GridError::from(ProvisionError::ClosedOutput { output: "x".into() });
        assert_eq!(
            (g.code, g.origin),
            (ErrorCode::SessionNotCreated, Origin::Driver)
        );
        assert!(g.message.contains("closed its output"));
    }
}
