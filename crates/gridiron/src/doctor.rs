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
    isolation(&found.installs);
    ExitCode::SUCCESS
}

/// How sessions would be isolated with the settings of this environment
/// (`GRIDIRON_DATA_DIR`, `GRIDIRON_SESSION_UID_BASE`, ...); flags of a grid
/// started differently may change it.
fn isolation(installs: &[gridiron_provision::BrowserInstall]) {
    let defaults = gridiron_provision::IsolationSettings::default();
    let number = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    let settings = gridiron_provision::IsolationSettings {
        uid_base: number("GRIDIRON_SESSION_UID_BASE", defaults.uid_base),
        uid_count: number("GRIDIRON_SESSION_UID_COUNT", defaults.uid_count),
        pass_env: Vec::new(),
    };
    let data_dir = std::env::var_os("GRIDIRON_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(crate::cli::default_data_dir);
    let iso = gridiron_provision::Isolation::preview(&settings, &data_dir, installs);
    println!();
    println!("Session isolation (data dir {}):", data_dir.display());
    println!(
        "  ok       cleared environment: drivers and browsers get none of the grid's variables"
    );
    match &iso.uids {
        Some(uids) => println!("  ok       own user per session: ids {uids}"),
        None => println!("  warning  own user per session: no, sessions share the grid's user"),
    }
    if iso.chromium_sandbox {
        println!("  ok       Chromium sandbox: on");
    } else {
        println!("  warning  Chromium sandbox: off (--no-sandbox)");
    }
    for note in &iso.notes {
        println!("           {note}");
    }
}
