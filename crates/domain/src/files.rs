//! Rules for the files a session exchanges with its client: managed downloads
//! (`/session/{id}/se/files`) and remote uploads (`/session/{id}/se/file`).
//! Names come from strangers (a client, or a page that chose a download's
//! name): only one plain component is ever used as a path.

use crate::GridError;

/// Suffixes of files a browser is still writing (Chromium, Firefox).
const PARTIAL_SUFFIXES: &[&str] = &[".crdownload", ".part"];

/// Checks that `name` is one plain file name: not empty, no separator, not
/// `.` or `..`, no NUL or control character. `what` names it in the error.
pub fn check_file_name(what: &str, name: &str) -> Result<(), GridError> {
    let why = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("names a directory")
    } else if name.contains(['/', '\\']) {
        Some("has a path separator: only a plain file name is allowed")
    } else if name.chars().any(char::is_control) {
        Some("has a control character")
    } else if name.len() > 255 {
        Some("is longer than 255 bytes")
    } else {
        None
    };
    match why {
        Some(why) => Err(GridError::invalid_argument(format!(
            "{what} {name:?} {why}"
        ))),
        None => Ok(()),
    }
}

/// Whether a browser is still writing `name`: a partial file itself, or a
/// file whose partial twin (`name.part`, `name.crdownload`) is among `names`
/// (Firefox creates the final name empty when a download starts).
pub fn is_partial(name: &str, names: &[String]) -> bool {
    PARTIAL_SUFFIXES.iter().any(|s| name.ends_with(s))
        || PARTIAL_SUFFIXES.iter().any(|s| {
            names
                .iter()
                .any(|n| n.len() == name.len() + s.len() && n.starts_with(name) && n.ends_with(s))
        })
}

/// The downloads a client may see among the regular files `names` of a
/// session's download directory: finished ones, sorted.
pub fn finished_downloads(names: &[String]) -> Vec<String> {
    let mut done: Vec<String> = names
        .iter()
        .filter(|n| check_file_name("", n).is_ok() && !is_partial(n, names))
        .cloned()
        .collect();
    done.sort();
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_plain_names_pass() {
        for ok in ["report.csv", "a b.txt", ".hidden", "über.pdf", "x..y"] {
            assert!(check_file_name("file", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "C:\\x",
            "a\0b",
            "a\nb",
        ] {
            let e = check_file_name("file", bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidArgument, "{bad:?}");
        }
        assert!(check_file_name("file", &"x".repeat(256)).is_err());
    }

    #[test]
    fn files_being_written_are_not_listed() {
        let all = names(&[
            "b.txt",
            "a.txt",
            "Unconfirmed 123.crdownload",
            "big.zip",
            "big.zip.part",
            "c.pdf.crdownload",
        ]);
        assert_eq!(finished_downloads(&all), names(&["a.txt", "b.txt"]));
        assert!(is_partial("big.zip", &all));
        assert!(!is_partial("a.txt", &all));
        assert!(finished_downloads(&[]).is_empty());
    }
}
