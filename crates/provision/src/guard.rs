//! Browsers that die with their driver.
//!
//! A driver gets a parent-death signal from the grid, but the browser it
//! starts does not inherit one (the kernel clears it on fork), so a browser
//! would outlive a grid killed with SIGKILL. Each browser is therefore
//! started through a small script that runs `gridiron exec-guarded`, which
//! asks for SIGKILL on its parent's death and then becomes the browser.

use crate::BrowserInstall;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Points every install's browser binary at a guard script under
/// `data_dir/bin` that starts the real browser via `gridiron exec-guarded`.
pub fn guard_browsers(
    installs: &mut [BrowserInstall],
    gridiron: &Path,
    data_dir: &Path,
) -> io::Result<()> {
    let dir = data_dir.join("bin");
    std::fs::create_dir_all(&dir)?;
    // Session processes may run as another user; the grid's umask is 077.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    for (i, install) in installs.iter_mut().enumerate() {
        let name = format!(
            "{}-{i}-guarded",
            install.stereotype.kind.driver_browser_name()
        );
        let script = dir.join(name);
        let text = format!(
            "#!/bin/sh\nexec {} exec-guarded {} \"$@\"\n",
            quote(&gridiron.to_string_lossy()),
            quote(&install.stereotype.binary)
        );
        std::fs::write(&script, text)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        install.stereotype.binary = script.to_string_lossy().into_owned();
    }
    Ok(())
}

/// Single-quotes `s` for the shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Asks for SIGKILL when the parent dies, then replaces this process with
/// `program`. Returns only on failure.
pub fn exec_guarded(program: &Path, args: &[std::ffi::OsString]) -> io::Error {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getppid();
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of this process.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return io::Error::last_os_error();
    }
    // The parent may have died before the flag was set.
    if nix::unistd::getppid() != parent {
        return io::Error::other("the parent process is gone");
    }
    std::process::Command::new(program).args(args).exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("/a b/c'd"), r"'/a b/c'\''d'");
    }

    #[test]
    fn scripts_replace_browser_binaries() {
        let dir = tempfile::tempdir().unwrap();
        let mut installs = vec![BrowserInstall {
            stereotype: gridiron_domain::Stereotype {
                kind: gridiron_domain::BrowserKind::Chromium,
                version: "1".into(),
                platform: "linux".into(),
                binary: "/usr/bin/chromium".into(),
            },
            driver: "/usr/bin/chromedriver".into(),
            driver_version: "1".into(),
        }];
        guard_browsers(&mut installs, Path::new("/opt/gridiron"), dir.path()).unwrap();
        let script = &installs[0].stereotype.binary;
        assert!(script.starts_with(&dir.path().to_string_lossy().into_owned()));
        let text = std::fs::read_to_string(script).unwrap();
        assert!(text.contains("exec '/opt/gridiron' exec-guarded '/usr/bin/chromium' \"$@\""));
    }
}
