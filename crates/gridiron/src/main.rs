//! The `gridiron` command: a browser grid for W3C WebDriver clients.

mod api_client;
mod cli;
mod doctor;
mod keys;
#[cfg(feature = "redis")]
mod roles;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Doctor => return doctor::run(),
        cli::Command::Watchdog { data_dir } => {
            gridiron_provision::run_watchdog(&data_dir);
            return std::process::ExitCode::SUCCESS;
        }
        cli::Command::Standalone(args) => cli::run_standalone(*args),
        cli::Command::Keys { command } => keys::run(command),
        cli::Command::Sessions { command } => api_client::run_sessions(command),
        cli::Command::Queue { command } => api_client::run_queue(command),
        #[cfg(feature = "redis")]
        cli::Command::Hub(args) => roles::run_hub(*args),
        #[cfg(feature = "redis")]
        cli::Command::Node(args) => roles::run_node(*args),
        #[cfg(feature = "redis")]
        cli::Command::Pools { command } => roles::run_pools(command),
        #[cfg(feature = "redis")]
        cli::Command::Nodes { command } => roles::run_nodes(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gridiron: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
