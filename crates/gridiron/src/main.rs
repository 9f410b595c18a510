//! The `gridiron` command: a browser grid for W3C WebDriver clients.

mod cli;
mod doctor;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Doctor => doctor::run(),
        cli::Command::Standalone(args) => match cli::run_standalone(*args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gridiron: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
