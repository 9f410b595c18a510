//! Finding browsers and drivers on this host, and their versions.

use gridiron_domain::{BrowserKind, Stereotype};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A browser together with the driver that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserInstall {
    /// What sessions on it look like.
    pub stereotype: Stereotype,
    /// Path of the driver binary.
    pub driver: PathBuf,
    /// Driver version as it reports it.
    pub driver_version: String,
}

/// One component looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Display name (`chromium`, `chromedriver`, ...).
    pub name: &'static str,
    /// Where it was found and its version, or `None`.
    pub found: Option<(PathBuf, String)>,
    /// How to install it when missing.
    pub install_hint: &'static str,
}

/// Everything discovery looked at.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Browsers the grid can run (browser and driver both present).
    pub installs: Vec<BrowserInstall>,
    /// Every component checked, found or not.
    pub components: Vec<Component>,
}

struct Wanted {
    kind: BrowserKind,
    browser: &'static str,
    browser_bins: &'static [&'static str],
    browser_hint: &'static str,
    driver: &'static str,
    driver_bins: &'static [&'static str],
    driver_hint: &'static str,
}

const WANTED: &[Wanted] = &[
    Wanted {
        kind: BrowserKind::Chromium,
        browser: "chromium",
        browser_bins: &[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ],
        browser_hint: "apt-get install -y chromium",
        driver: "chromedriver",
        driver_bins: &["chromedriver"],
        driver_hint: "apt-get install -y chromium-driver",
    },
    Wanted {
        kind: BrowserKind::Firefox,
        browser: "firefox",
        browser_bins: &["firefox", "firefox-esr"],
        browser_hint: "apt-get install -y firefox-esr",
        driver: "geckodriver",
        driver_bins: &["geckodriver"],
        driver_hint: "cargo install geckodriver",
    },
];

/// Looks for every supported browser and driver on `PATH` (plus `~/.cargo/bin`).
pub fn discover() -> Discovery {
    let mut out = Discovery::default();
    let found: Vec<(Option<PathBuf>, Option<PathBuf>)> = WANTED
        .iter()
        .map(|w| {
            (
                w.browser_bins.iter().find_map(|b| find(b)),
                w.driver_bins.iter().find_map(|b| find(b)),
            )
        })
        .collect();
    // Every `--version` at once: a browser's takes tens of milliseconds, and
    // the grid is not ready until all have answered.
    let versions: Vec<(Option<String>, Option<String>)> = std::thread::scope(|scope| {
        let probes: Vec<_> = found
            .iter()
            .map(|(b, d)| {
                let b = b.as_deref().map(|p| scope.spawn(move || version_of(p)));
                let d = d.as_deref().map(|p| scope.spawn(move || version_of(p)));
                (b, d)
            })
            .collect();
        let join = |h: Option<std::thread::ScopedJoinHandle<'_, Option<String>>>| {
            h.and_then(|h| h.join().ok().flatten())
        };
        probes
            .into_iter()
            .map(|(b, d)| (join(b), join(d)))
            .collect()
    });
    for ((w, (browser, driver)), (browser_version, driver_version)) in
        WANTED.iter().zip(found).zip(versions)
    {
        out.components.push(Component {
            name: w.browser,
            found: browser.clone().zip(browser_version.clone()),
            install_hint: w.browser_hint,
        });
        out.components.push(Component {
            name: w.driver,
            found: driver.clone().zip(driver_version.clone()),
            install_hint: w.driver_hint,
        });
        if let (Some(b), Some(bv), Some(d), Some(dv)) =
            (browser, browser_version, driver, driver_version)
        {
            out.installs.push(BrowserInstall {
                stereotype: Stereotype {
                    kind: w.kind,
                    version: bv,
                    platform: std::env::consts::OS.to_string(),
                    binary: b.to_string_lossy().into_owned(),
                },
                driver: d,
                driver_version: dv,
            });
        }
    }
    out
}

/// The executable `name` on the grid's PATH (or in `~/.cargo/bin`).
pub fn find(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn version_of(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// The first dotted number in a `--version` line (`Chromium 156.0.1 built on ...` -> `156.0.1`).
pub fn parse_version(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_digit() && c != '.'))
        .find(|w| {
            w.contains('.')
                && w.split('.')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_version_lines() {
        assert_eq!(
            parse_version("Chromium 156.0.8078.108 built on Debian GNU/Linux 12 (bookworm)")
                .as_deref(),
            Some("156.0.8078.108")
        );
        assert_eq!(
            parse_version("ChromeDriver 156.0.8078.108 (730482a9-refs/branch-heads/8078@{#2244})")
                .as_deref(),
            Some("156.0.8078.108")
        );
        assert_eq!(
            parse_version("Mozilla Firefox 128.5.0esr").as_deref(),
            Some("128.5.0")
        );
        assert_eq!(
            parse_version("geckodriver 0.36.0").as_deref(),
            Some("0.36.0")
        );
        assert_eq!(parse_version("no version here"), None);
    }
}
