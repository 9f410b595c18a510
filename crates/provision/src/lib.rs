//! How a Gridiron session's driver and browser are started and stopped.
//!
//! [`discovery`] finds the browsers and drivers installed on this host,
//! [`driver`] runs one driver in its own process group, [`local`] is the
//! provisioner that hands a fresh driver to each session, and [`sweep`]
//! finds processes a previous grid process left behind. The grid sees
//! provisioners only through the [`Provisioner`] trait, and what they start
//! through [`SessionProcess`].

pub mod discovery;
pub mod driver;
pub mod driver_log;
pub mod error;
pub mod guard;
pub mod isolation;
pub mod local;
mod output;
pub mod process;
mod procfs;
pub mod sweep;
pub mod video;

pub use discovery::{discover, BrowserInstall, Discovery};
pub use driver::{DriverExit, DriverProcess};
pub use error::ProvisionError;
pub use guard::{die_with_parent, run_watchdog, Watchdog};
pub use isolation::{Isolation, IsolationSettings};
pub use local::LocalProvisioner;
pub use process::{Provisioner, SessionHandle, SessionProcess, X11Display};
pub use video::{PostProcessing, VideoSettings};

/// Environment variable carried by every process the grid starts: the grid's
/// data directory. Lets the grid (and tests) find its own processes, and the
/// start-up sweep kill what a previous grid left behind. A private name on
/// purpose: the sweep kills whatever carries it, so it must never be the name
/// of a setting (`GRIDIRON_DATA_DIR`) that an operator's shell or supervisor
/// may carry too.
pub const ENV_MARK: &str = "__GRIDIRON_SWEEP_MARK";
/// Environment variable carried by a session's processes: its session id.
pub const ENV_SESSION: &str = "__GRIDIRON_SWEEP_SESSION";

/// The outbox below a session's directory: what the session's processes
/// leave there is kept as its artifacts (the grid's `artifacts::outbox`).
pub const OUTBOX: &str = "artifacts";
