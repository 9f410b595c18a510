//! `gridiron doctor`: what this host can run, and how to install what is missing.

use std::process::ExitCode;

/// Prints every browser and driver looked for; fails when no browser can run.
pub fn run() -> ExitCode {
    let found = gridiron_provision::discover();
    println!(
        "Gridiron {} on {}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS
    );
    println!();
    for c in &found.components {
        match &c.found {
            Some((path, version)) => {
                println!(
                    "  ok       {:<13} {:<18} {}",
                    c.name,
                    version,
                    path.display()
                )
            }
            None => println!("  missing  {:<13} install: {}", c.name, c.install_hint),
        }
    }
    println!();
    if found.installs.is_empty() {
        println!("No browser can run: install a browser together with its driver (see above).");
        return ExitCode::FAILURE;
    }
    println!("Browsers sessions can use:");
    for i in &found.installs {
        println!(
            "  {} {} (driver {} {})",
            i.stereotype.kind.driver_browser_name(),
            i.stereotype.version,
            i.driver.display(),
            i.driver_version
        );
    }
    ExitCode::SUCCESS
}
