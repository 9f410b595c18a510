//! Pure domain logic of Gridiron.
//!
//! Everything here is plain Rust with no I/O: capability processing, the
//! scheduling policy, the session state machine and the W3C error mapping.
//! The server, the store and the provisioners sit on top of it.

pub mod api;
pub mod artifacts;
pub mod auth;
pub mod capabilities;
pub mod cdp;
pub mod civil;
pub mod cross_site;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod files;
pub mod launch;
pub mod launch_policy;
pub mod lifecycle;
pub mod metrics;
pub mod options;
pub mod percent;
pub mod pool;
pub mod public_url;
pub mod queue;
pub mod recording;
pub mod redact;
pub mod request;
pub mod request_wait;
pub mod text;
pub mod timeline;
pub mod warm;
pub mod webhooks;

pub use capabilities::{BrowserKind, Stereotype};
pub use error::{ErrorCode, GridError, Origin};
pub use lifecycle::{EndReason, SessionState};
pub use options::GridOptions;
