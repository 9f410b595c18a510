//! The grid's lifecycle events: written in order to the event log by an
//! [`EventSink`], followed live by an [`EventFeed`], served to clients as
//! Server-Sent Events and over a WebSocket ([`crate::api`]).

mod feed;
pub(crate) mod http;
mod sink;
mod subscription;
#[cfg(test)]
mod tests;

pub use feed::EventFeed;
pub use http::{routes, EventsQuery};
pub use sink::EventSink;
pub use subscription::{Dropped, Subscription};
