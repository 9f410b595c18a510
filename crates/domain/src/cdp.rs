//! CDP-only sessions: reading what a Puppeteer or Playwright client asks for
//! from the query string of `/cdp`.

use crate::error::GridError;
use crate::options::GridOptions;

/// A request for a bare Chromium driven over CDP.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CdpRequest {
    /// Extra Chromium switches, in order.
    pub args: Vec<String>,
    /// Headless or not; `None` for the grid default.
    pub headless: Option<bool>,
    /// Name, labels, timeouts.
    pub options: GridOptions,
}

/// Parses `/cdp` query parameters:
/// `browser` (chromium/chrome), `headless` (true/false), `arg` or `args`
/// (one switch each, repeatable), any `--switch[=value]` key, `windowSize`
/// (`WxH`), `name`, `label` (`key:value`, repeatable), `idleTimeout` and
/// `sessionTimeout` (seconds).
pub fn parse_query(params: &[(String, String)]) -> Result<CdpRequest, GridError> {
    let mut r = CdpRequest::default();
    let bad = |k: &str, v: &str| GridError::invalid_argument(format!("bad value for {k}: {v:?}"));
    let secs = |k: &str, v: &str| {
        v.parse::<f64>()
            .ok()
            .and_then(crate::options::positive_seconds)
            .ok_or_else(|| bad(k, v))
    };
    for (k, v) in params {
        match k.as_str() {
            "browser" | "browserName" => {
                if !["chromium", "chrome", "googlechrome"].contains(&v.to_ascii_lowercase().as_str()) {
                    return Err(GridError::not_created(
                        crate::Origin::Client,
                        format!("CDP sessions run Chromium; browser {v:?} is not available"),
                    ));
                }
            }
            "headless" => {
                r.headless = Some(match v.as_str() {
                    "" | "true" | "1" | "new" => true,
                    "false" | "0" => false,
                    _ => return Err(bad(k, v)),
                })
            }
            "arg" | "args" | "launchArgs" => {
                if !v.starts_with("--") {
                    return Err(bad(k, v));
                }
                r.args.push(v.clone())
            }
            "windowSize" | "window-size" => {
                let (w, h) = v.split_once(['x', ',']).ok_or_else(|| bad(k, v))?;
                let (w, h): (u32, u32) = (w.parse().map_err(|_| bad(k, v))?, h.parse().map_err(|_| bad(k, v))?);
                r.args.push(format!("--window-size={w},{h}"));
            }
            "name" => r.options.name = Some(v.clone()),
            "label" => {
                let (lk, lv) = v.split_once(':').ok_or_else(|| bad(k, v))?;
                r.options.labels.insert(lk.to_string(), lv.to_string());
            }
            "idleTimeout" => r.options.idle_timeout = Some(secs(k, v)?),
            "sessionTimeout" => r.options.session_timeout = Some(secs(k, v)?),
            switch if switch.starts_with("--") && switch.len() > 2 => {
                r.args.push(if v.is_empty() {
                    switch.to_string()
                } else {
                    format!("{switch}={v}")
                })
            }
            other => {
                return Err(GridError::invalid_argument(format!(
                    "unknown /cdp parameter {other:?}; known: browser, headless, arg, --switch, windowSize, name, label, idleTimeout, sessionTimeout"
                )))
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use std::time::Duration;

    fn q(pairs: &[(&str, &str)]) -> Result<CdpRequest, GridError> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        parse_query(&v)
    }

    #[test]
    fn empty_query_is_defaults() {
        assert_eq!(q(&[]).unwrap(), CdpRequest::default());
    }

    #[test]
    fn switches_and_options() {
        let r = q(&[
            ("browser", "chromium"),
            ("headless", "false"),
            ("--window-size", "800,600"),
            ("arg", "--lang=de"),
            ("--mute-audio", ""),
            ("idleTimeout", "30"),
            ("name", "pptr"),
            ("label", "team:web"),
        ])
        .unwrap();
        assert_eq!(r.headless, Some(false));
        assert_eq!(
            r.args,
            vec!["--window-size=800,600", "--lang=de", "--mute-audio"]
        );
        assert_eq!(r.options.idle_timeout, Some(Duration::from_secs(30)));
        assert_eq!(r.options.name.as_deref(), Some("pptr"));
        assert_eq!(r.options.labels["team"], "web");
        assert_eq!(
            q(&[("windowSize", "1024x768")]).unwrap().args,
            vec!["--window-size=1024,768"]
        );
    }

    #[test]
    fn bad_queries_are_refused() {
        assert_eq!(
            q(&[("browser", "firefox")]).unwrap_err().code,
            ErrorCode::SessionNotCreated
        );
        for bad in [
            ("headless", "maybe"),
            ("idleTimeout", "-1"),
            ("sessionTimeout", "1e300"),
            ("arg", "rm -rf"),
            ("windowSize", "big"),
            ("bogus", "1"),
        ] {
            assert_eq!(
                q(&[bad]).unwrap_err().code,
                ErrorCode::InvalidArgument,
                "{bad:?}"
            );
        }
    }
}
