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
pub mod error;
pub mod guard;
pub mod local;
pub mod process;
pub mod sweep;

pub use discovery::{discover, BrowserInstall, Discovery};
pub use driver::{DriverExit, DriverProcess};
pub use error::ProvisionError;
pub use guard::{exec_guarded, guard_browsers};
pub use local::LocalProvisioner;
pub use process::{Provisioner, SessionHandle, SessionProcess};

/// Environment variable carried by every process the grid starts: the grid's
/// data directory. Lets the grid (and tests) find its own processes.
pub const ENV_DATA_DIR: &str = "GRIDIRON_DATA_DIR";
/// Environment variable carried by a session's processes: its session id.
pub const ENV_SESSION: &str = "GRIDIRON_SESSION";
