//! Video recording of a session: whether a request asks for it and at what
//! screen size. Three spellings ask for a recording: Gridiron's
//! `gridiron:options.recordVideo`, Selenium Grid's `se:recordVideo` and
//! Selenoid's `selenoid:options.enableVideo`; none of them reaches the driver.

use crate::capabilities::GRID_OPTIONS_KEY;
use crate::error::GridError;
use serde_json::{Map, Value};

/// Selenium Grid's switch for a recording.
pub const SE_RECORD_VIDEO: &str = "se:recordVideo";
/// Selenoid's vendor options (`enableVideo`, `screenResolution`).
pub const SELENOID_OPTIONS: &str = "selenoid:options";
/// The screen of a recorded session unless the request says otherwise.
pub const DEFAULT_SCREEN: Screen = Screen {
    width: 1366,
    height: 768,
};
/// The largest screen a session may ask for (4K): an X screen and its frames
/// cost memory and CPU in proportion to their area.
pub const MAX_SCREEN: Screen = Screen {
    width: 3840,
    height: 2160,
};
/// The smallest screen that still holds a browser window.
pub const MIN_SCREEN: Screen = Screen {
    width: 240,
    height: 160,
};
/// Frames per second of recordings unless the operator chose (`--video-fps`).
pub const DEFAULT_FPS: u32 = 10;
/// The frame rates an operator may choose.
pub const FPS_RANGE: std::ops::RangeInclusive<u32> = 1..=60;

/// A screen size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

impl Screen {
    /// Parses `1280x720` or Selenoid's `1280x720x24` (the depth must be 24:
    /// browsers and the encoder work in 24-bit colour). Refuses sizes outside
    /// [`MIN_SCREEN`]..=[`MAX_SCREEN`].
    pub fn parse(text: &str) -> Option<Screen> {
        let mut parts = text.trim().split('x');
        let width = parts.next()?.parse().ok()?;
        let height = parts.next()?.parse().ok()?;
        match parts.next() {
            None | Some("24") => {}
            Some(_) => return None,
        }
        if parts.next().is_some() {
            return None;
        }
        Screen { width, height }.bounded()
    }

    /// Chromium's `--window-size=W,H` (also `W x H` with spaces around the comma).
    fn from_window_size(value: &str) -> Option<Screen> {
        let (w, h) = value.split_once(',')?;
        Screen {
            width: w.trim().parse().ok()?,
            height: h.trim().parse().ok()?,
        }
        .bounded()
    }

    fn bounded(self) -> Option<Screen> {
        let fits = (MIN_SCREEN.width..=MAX_SCREEN.width).contains(&self.width)
            && (MIN_SCREEN.height..=MAX_SCREEN.height).contains(&self.height);
        fits.then_some(self)
    }

    /// The size the encoder records: H.264 with 4:2:0 chroma needs even sides,
    /// so an odd side loses its last pixel row or column.
    pub fn even(self) -> Screen {
        Screen {
            width: self.width & !1,
            height: self.height & !1,
        }
    }
}

impl std::fmt::Display for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl serde::Serialize for Screen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The screen a recorded session gets, if `caps` (merged capabilities) ask for a
/// recording; `None` if they do not. A malformed switch or size is the client's
/// `invalid argument`, whether or not a recording is asked for.
pub fn requested(caps: &Map<String, Value>) -> Result<Option<Screen>, GridError> {
    let grid = caps.get(GRID_OPTIONS_KEY).and_then(Value::as_object);
    let selenoid = match caps.get(SELENOID_OPTIONS) {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o),
        Some(_) => {
            return Err(GridError::invalid_argument(format!(
                "'{SELENOID_OPTIONS}' must be an object"
            )))
        }
    };
    let mut on = false;
    let switches = [
        (
            grid.and_then(|g| g.get("recordVideo")),
            "gridiron:options.recordVideo",
        ),
        (caps.get(SE_RECORD_VIDEO), SE_RECORD_VIDEO),
        (
            selenoid.and_then(|s| s.get("enableVideo")),
            "selenoid:options.enableVideo",
        ),
    ];
    for (value, name) in switches {
        match value {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => on |= b,
            Some(v) => {
                return Err(GridError::invalid_argument(format!(
                    "{name} must be true or false, not {v}"
                )))
            }
        }
    }
    let sizes = [
        (
            grid.and_then(|g| g.get("screenResolution")),
            "gridiron:options.screenResolution",
        ),
        (
            selenoid.and_then(|s| s.get("screenResolution")),
            "selenoid:options.screenResolution",
        ),
    ];
    let mut screen = None;
    for (value, name) in sizes {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            continue;
        };
        let parsed = value.as_str().and_then(Screen::parse).ok_or_else(|| {
            GridError::invalid_argument(format!(
                "{name} must be WIDTHxHEIGHT (or WIDTHxHEIGHTx24) between {MIN_SCREEN} and \
                 {MAX_SCREEN}, not {value}"
            ))
        })?;
        screen = screen.or(Some(parsed));
    }
    if !on {
        return Ok(None);
    }
    let window = || {
        chromium_args(caps)
            .filter_map(|a| a.strip_prefix("--window-size="))
            .find_map(Screen::from_window_size)
    };
    Ok(Some(screen.or_else(window).unwrap_or(DEFAULT_SCREEN)))
}

fn chromium_args(caps: &Map<String, Value>) -> impl Iterator<Item = &str> {
    caps.get("goog:chromeOptions")
        .and_then(|o| o.get("args"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Removes the recording switches only the grid acts on, so the driver never
/// sees them (`gridiron:options` goes as a whole elsewhere).
pub fn strip(caps: &mut Map<String, Value>) {
    caps.remove(SE_RECORD_VIDEO);
    caps.remove(SELENOID_OPTIONS);
}

/// Makes the driver capabilities of a recorded session show the browser on
/// its X screen, filling it: no headless switch (whoever set it), and a
/// window of the screen's size at its corner unless the client chose one.
pub fn show_on_screen(caps: &mut Map<String, Value>, screen: Screen) {
    let headless = |a: &str| {
        let a = a.trim_start_matches('-');
        a == "headless" || a.starts_with("headless=")
    };
    let edit =
        |caps: &mut Map<String, Value>, vendor: &str, add: &dyn Fn(&[String]) -> Vec<String>| {
            let Some(opts) = caps.get_mut(vendor).and_then(Value::as_object_mut) else {
                return;
            };
            let mut args: Vec<String> = opts
                .get("args")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            args.retain(|a| !headless(a));
            let extra = add(&args);
            args.extend(extra);
            opts.insert(
                "args".into(),
                Value::Array(args.into_iter().map(Value::String).collect()),
            );
        };
    let has = |args: &[String], switch: &str| {
        args.iter()
            .any(|a| a == switch || a.starts_with(&format!("{switch}=")))
    };
    edit(caps, "goog:chromeOptions", &|args| {
        let mut extra = Vec::new();
        if !has(args, "--window-size") {
            extra.push(format!("--window-size={},{}", screen.width, screen.height));
        }
        if !has(args, "--window-position") {
            extra.push("--window-position=0,0".into());
        }
        // No window manager draws a frame; the page shows without an info bar.
        extra.push("--disable-infobars".into());
        extra
    });
    edit(caps, "moz:firefoxOptions", &|args| {
        let mut extra = Vec::new();
        if !has(args, "--width") && !has(args, "-width") {
            extra.extend(["--width".into(), screen.width.to_string()]);
        }
        if !has(args, "--height") && !has(args, "-height") {
            extra.extend(["--height".into(), screen.height.to_string()]);
        }
        extra
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> Result<Option<Screen>, GridError> {
        requested(v.as_object().unwrap())
    }

    fn size(w: u32, h: u32) -> Option<Screen> {
        Some(Screen {
            width: w,
            height: h,
        })
    }

    #[test]
    fn each_spelling_asks_for_a_recording() {
        assert_eq!(req(json!({})).unwrap(), None);
        assert_eq!(
            req(json!({"gridiron:options": {"recordVideo": true}})).unwrap(),
            Some(DEFAULT_SCREEN)
        );
        assert_eq!(
            req(json!({"se:recordVideo": true})).unwrap(),
            Some(DEFAULT_SCREEN)
        );
        assert_eq!(
            req(json!({"selenoid:options": {"enableVideo": true}})).unwrap(),
            Some(DEFAULT_SCREEN)
        );
        assert_eq!(
            req(json!({"se:recordVideo": false, "gridiron:options": {"recordVideo": false}}))
                .unwrap(),
            None
        );
    }

    #[test]
    fn the_screen_follows_the_request() {
        assert_eq!(
            req(json!({"gridiron:options": {"recordVideo": true, "screenResolution": "1280x720"}}))
                .unwrap(),
            size(1280, 720)
        );
        assert_eq!(
            req(json!({"selenoid:options": {"enableVideo": true, "screenResolution": "1920x1080x24"}}))
                .unwrap(),
            size(1920, 1080)
        );
        // Gridiron's own option wins over Selenoid's.
        assert_eq!(
            req(
                json!({"gridiron:options": {"recordVideo": true, "screenResolution": "800x600"},
                       "selenoid:options": {"screenResolution": "1024x768"}})
            )
            .unwrap(),
            size(800, 600)
        );
        // Else the window size the client gives Chromium.
        assert_eq!(
            req(json!({"se:recordVideo": true,
                       "goog:chromeOptions": {"args": ["--lang=de", "--window-size=1024,700"]}}))
            .unwrap(),
            size(1024, 700)
        );
    }

    #[test]
    fn bad_switches_and_sizes_are_invalid_arguments() {
        for v in [
            json!({"se:recordVideo": "yes"}),
            json!({"gridiron:options": {"recordVideo": 1}}),
            json!({"selenoid:options": true}),
            json!({"selenoid:options": {"enableVideo": "true"}}),
            json!({"gridiron:options": {"recordVideo": true, "screenResolution": "big"}}),
            json!({"gridiron:options": {"screenResolution": "1280x720x16"}}),
            json!({"gridiron:options": {"screenResolution": "7680x4320"}}),
            json!({"gridiron:options": {"screenResolution": "10x10"}}),
            json!({"gridiron:options": {"screenResolution": "1280x720x24x1"}}),
            json!({"gridiron:options": {"screenResolution": "-1280x720"}}),
            json!({"gridiron:options": {"screenResolution": 1280}}),
            json!({"selenoid:options": {"screenResolution": "99999999999x1"}}),
        ] {
            let e = req(v.clone()).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidArgument, "{v}");
        }
        // A window size out of bounds is the browser's business, not the screen's.
        assert_eq!(
            req(json!({"se:recordVideo": true, "goog:chromeOptions": {"args": ["--window-size=9000,9000"]}}))
                .unwrap(),
            Some(DEFAULT_SCREEN)
        );
    }

    #[test]
    fn screens_parse_and_record_at_even_sizes() {
        assert_eq!(Screen::parse("1280x720"), size(1280, 720));
        assert_eq!(Screen::parse(" 3840x2160x24 "), size(3840, 2160));
        assert_eq!(Screen::parse("3841x2160"), None);
        assert_eq!(Screen::parse("1280X720"), None);
        assert_eq!(Screen::parse("x720"), None);
        assert_eq!(
            Screen::parse("1025x767").unwrap().even(),
            Screen {
                width: 1024,
                height: 766
            }
        );
        assert_eq!(
            serde_json::to_value(DEFAULT_SCREEN).unwrap(),
            json!("1366x768")
        );
    }

    #[test]
    fn recording_switches_never_reach_the_driver() {
        let mut caps = json!({"se:recordVideo": true, "selenoid:options": {"enableVideo": true},
                              "se:remoteUrl": "x", "browserName": "chrome"});
        strip(caps.as_object_mut().unwrap());
        assert_eq!(caps, json!({"se:remoteUrl": "x", "browserName": "chrome"}));
    }

    #[test]
    fn a_recorded_browser_shows_on_its_screen() {
        let screen = size(1280, 720).unwrap();
        let mut c =
            json!({"goog:chromeOptions": {"args": ["--headless=new", "--lang=fr", "headless"]}});
        show_on_screen(c.as_object_mut().unwrap(), screen);
        assert_eq!(
            c["goog:chromeOptions"]["args"],
            json!([
                "--lang=fr",
                "--window-size=1280,720",
                "--window-position=0,0",
                "--disable-infobars"
            ])
        );
        let mut c = json!({"goog:chromeOptions": {"args": ["--window-size=800,600"]}});
        show_on_screen(c.as_object_mut().unwrap(), screen);
        assert_eq!(
            c["goog:chromeOptions"]["args"][0],
            json!("--window-size=800,600")
        );
        assert_eq!(c["goog:chromeOptions"]["args"].as_array().unwrap().len(), 3);
        let mut f = json!({"moz:firefoxOptions": {"args": ["-headless", "--headless"]}});
        show_on_screen(f.as_object_mut().unwrap(), screen);
        assert_eq!(
            f["moz:firefoxOptions"]["args"],
            json!(["--width", "1280", "--height", "720"])
        );
    }
}
