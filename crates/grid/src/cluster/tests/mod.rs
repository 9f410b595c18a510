//! Hubs and nodes together, without Redis or a browser: every role runs in
//! this process over one [`gridiron_store::MemoryCluster`], served over real
//! HTTP, with nodes on the stand-in provisioner.

mod api;
mod bounds;
mod claiming;
mod client_gone;
mod dashboard;
mod drain;
mod fixture;
mod hub_loss;
mod keys;
mod launch_policy;
mod metrics;
mod node_loss;
mod queueing;
mod signing;
mod store_restart;
mod tls;
mod wire;
