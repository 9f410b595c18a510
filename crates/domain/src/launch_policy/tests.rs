use super::*;
use crate::capabilities::parse_new_session;
use crate::ErrorCode;
use proptest::prelude::*;
use serde_json::json;

fn none() -> LaunchAllowances {
    LaunchAllowances::default()
}

fn caps(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// The refusal of `args` under `goog:chromeOptions`, which must exist.
fn chrome_refusal(args: &[&str], allow: &LaunchAllowances) -> GridError {
    let c = caps(json!({"goog:chromeOptions": {"args": args}}));
    match check_capabilities(&c, allow) {
        Ok(()) => panic!("{args:?} must be refused"),
        Err(e) => e,
    }
}

fn assert_names(e: &GridError, item: &str) {
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    assert_eq!(e.http_status(), 400);
    assert!(
        e.message.contains(item),
        "{item:?} not named in {:?}",
        e.message
    );
}

/// Every switch the policy must refuse, in its canonical spelling.
const VECTORS: &[&str] = &[
    "--renderer-cmd-prefix",
    "--utility-cmd-prefix",
    "--gpu-launcher",
    "--browser-subprocess-path",
    "--user-data-dir",
    "--remote-debugging-port",
    "--remote-debugging-pipe",
    "--remote-debugging-address",
    "--remote-debugging-socket-name",
    "--remote-allow-origins",
    "--load-extension",
    "--disable-extensions-except",
    "--log-file",
    "--utility-and-browser-cmd-prefix",
    "--plugin-launcher",
    "--ppapi-plugin-launcher",
    "--zygote-cmd-prefix",
    "--nacl-loader-cmd-prefix",
    "--crash-dumps-dir",
    "--disk-cache-dir",
    "--profile-directory",
    "--ssl-key-log-file",
    "--log-net-log",
    "--register-pepper-plugins",
    "--js-flags",
    "--trace-startup-file",
    "--screenshot",
    "--print-to-pdf",
    "--profile",
    "--start-debugger-server",
    "--app",
];

#[test]
fn every_vector_is_refused_in_every_form() {
    for v in VECTORS {
        let bare = v.trim_start_matches('-');
        let upper = bare.to_uppercase();
        let forms = [
            vec![v.to_string()],
            vec![format!("{v}=touch /tmp/marker")],
            vec![v.to_string(), "touch /tmp/marker".into()],
            vec![format!("-{bare}=x")],
            vec![format!("--{upper}=x")],
            vec![format!("  --{upper}  =x")],
            vec![format!("\t{v}\n")],
            vec![format!("--{}=x", bare.replace('-', "_"))],
            vec![format!("\u{2212}\u{2212}{bare}=x")],
            vec![format!("---{bare}")],
            vec!["--lang=de".into(), format!("{v}=x")],
            vec![format!("--lang=de {v}=x")],
        ];
        for args in forms {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let e = chrome_refusal(&refs, &none());
            assert_names(&e, v);
            assert_names(&e, "goog:chromeOptions.args");
            let e = check_switches("/cdp", &args, &none()).unwrap_err();
            assert_names(&e, v);
        }
    }
}

#[test]
fn page_switches_pass() {
    let args: Vec<String> = [
        "--window-size=1280,800",
        "--lang=de",
        "--headless=new",
        "--user-agent=Mozilla/5.0 (X11; Linux x86_64) Test --ua",
        "--enable-features=NetworkService",
        "--enable-logging=stderr",
        "--mute-audio",
        "--host-resolver-rules=MAP * 127.0.0.1",
        "https://example.com/?a=--gpu-launcher",
        "-headless",
        "--no-sandbox",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    check_switches("/cdp", &args, &none()).unwrap();
    let c = caps(json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"args": args, "extensions": [], "prefs": {"intl": {"accept_languages": "de"}}},
        "moz:firefoxOptions": {"args": ["-headless"], "env": {}, "prefs": {"browser.download.folderList": 2}},
        "gridiron:options": {"binary": "/usr/bin/python3"},
        "goog:loggingPrefs": {"browser": "ALL"}
    }));
    check_capabilities(&c, &none()).unwrap();
}

#[test]
fn an_ephemeral_debugging_port_is_what_the_driver_asks_for_itself() {
    let args: Vec<String> = vec![
        "--remote-debugging-port=0".into(),
        "--lang=de --remote-debugging-port=0".into(),
    ];
    check_switches("/cdp", &args, &none()).unwrap();
    for other in [
        "--remote-debugging-port=9222",
        "--remote-debugging-port",
        "--remote-debugging-port=0,9222",
        "--remote-debugging-address=0.0.0.0",
        "--lang=de --remote-debugging-port=1",
    ] {
        let e = check_switches("/cdp", &[other.to_string()], &none()).unwrap_err();
        assert_names(&e, "--remote-debugging-");
    }
}

#[test]
fn client_binaries_are_refused_unless_allowed() {
    for key in ["goog:chromeOptions", "moz:firefoxOptions", "ms:edgeOptions"] {
        let c = caps(json!({ key: {"binary": "/usr/bin/python3", "args": ["-c", "print(1)"]} }));
        let e = check_capabilities(&c, &none()).unwrap_err();
        assert_names(&e, &format!("{key}.binary"));
        assert_names(&e, "/usr/bin/python3");
        let c = caps(json!({ key: {"Binary": 7} }));
        assert_names(&check_capabilities(&c, &none()).unwrap_err(), "Binary");
    }
    let allow = LaunchAllowances::new(vec!["/usr/bin/chromium".into()], vec![]).unwrap();
    let ok = caps(json!({"goog:chromeOptions": {"binary": "/usr/bin/chromium"}}));
    check_capabilities(&ok, &allow).unwrap();
    for other in [
        "/usr/bin/python3",
        "/usr/bin/../bin/chromium",
        "/usr/bin/chromium ",
    ] {
        let c = caps(json!({"goog:chromeOptions": {"binary": other}}));
        assert!(check_capabilities(&c, &allow).is_err(), "{other}");
    }
}

#[test]
fn options_that_take_over_the_browser_are_refused() {
    for (opts, item) in [
        (
            json!({"goog:chromeOptions": {"debuggerAddress": "127.0.0.1:9222"}}),
            "goog:chromeOptions.debuggerAddress",
        ),
        (
            json!({"moz:firefoxOptions": {"env": {"LD_PRELOAD": "/tmp/x.so"}}}),
            "moz:firefoxOptions.env",
        ),
        (
            json!({"moz:firefoxOptions": {"env": "x"}}),
            "moz:firefoxOptions.env",
        ),
        (
            json!({"moz:firefoxOptions": {"profile": "UEsDBA=="}}),
            "moz:firefoxOptions.profile",
        ),
        (
            json!({"goog:chromeOptions": {"minidumpPath": "/tmp"}}),
            "goog:chromeOptions.minidumpPath",
        ),
        (
            json!({"moz:firefoxOptions": {"args": ["-profile", "/tmp/p"]}}),
            "--profile",
        ),
        (
            json!({"moz:firefoxOptions": {"args": ["--profile=/tmp/p"]}}),
            "--profile",
        ),
        (
            json!({"moz:firefoxOptions": {"args": ["-P", "default"]}}),
            "--p ",
        ),
        (
            json!({"goog:chromeOptions": {"prefs": {"download": {"default_directory": "/root"}}}}),
            "download.default_directory",
        ),
        (
            json!({"goog:chromeOptions": {"prefs": {"download.extensions_to_open": "sh"}}}),
            "download.extensions_to_open",
        ),
        (
            json!({"moz:firefoxOptions": {"prefs": {"browser.download.dir": "/root"}}}),
            "browser.download.dir",
        ),
        (
            json!({"moz:firefoxOptions": {"prefs": {"network.protocol-handler.app.x": "/bin/sh"}}}),
            "network.protocol-handler.app.x",
        ),
        (
            json!({"moz:firefoxOptions": {"prefs": {"helpers.private_mailcap_file": "/tmp/m"}}}),
            "helpers.private_mailcap_file",
        ),
        (
            json!({"goog:chromeOptions": {"args": "--gpu-launcher=x"}}),
            "goog:chromeOptions.args",
        ),
        (
            json!({"goog:chromeOptions": {"args": [1]}}),
            "goog:chromeOptions.args",
        ),
        (
            json!({"goog:chromeOptions": {"args": ["--lang=de\u{0}--x"]}}),
            "control characters",
        ),
    ] {
        let e = check_capabilities(&caps(opts.clone()), &none()).unwrap_err();
        assert_names(&e, item);
    }
}

#[test]
fn every_capability_set_is_checked() {
    let body = json!({"capabilities": {
        "alwaysMatch": {"browserName": "chrome"},
        "firstMatch": [{}, {"goog:chromeOptions": {"args": ["--gpu-launcher=x"]}}]
    }});
    let r = parse_new_session(&body).unwrap();
    assert_names(&check_request(&r, &none()).unwrap_err(), "--gpu-launcher");
    let body = json!({"desiredCapabilities": {"goog:chromeOptions": {"binary": "/bin/sh"}}});
    let r = parse_new_session(&body).unwrap();
    assert_names(&check_request(&r, &none()).unwrap_err(), "binary");
    let fine = parse_new_session(&json!({"capabilities": {}})).unwrap();
    check_request(&fine, &none()).unwrap();
}

#[test]
fn operators_widen_the_policy_by_name() {
    let allow = LaunchAllowances::new(
        vec![],
        vec![
            "--renderer-cmd-prefix".into(),
            "debuggerAddress".into(),
            "prefs.download.default_directory".into(),
        ],
    )
    .unwrap();
    for args in [
        vec!["--renderer-cmd-prefix=touch /tmp/m"],
        vec!["--RENDERER-CMD-PREFIX", "touch /tmp/m"],
    ] {
        let c = caps(json!({"goog:chromeOptions": {"args": args}}));
        check_capabilities(&c, &allow).unwrap();
    }
    // Exactly that one: its neighbours stay refused.
    assert_names(
        &chrome_refusal(&["--utility-cmd-prefix=x"], &allow),
        "--utility-cmd-prefix",
    );
    assert_names(
        &chrome_refusal(&["--renderer-cmd-prefix=x", "--gpu-launcher=y"], &allow),
        "--gpu-launcher",
    );
    let c = caps(json!({"goog:chromeOptions": {
        "debuggerAddress": "127.0.0.1:1",
        "prefs": {"download": {"default_directory": "/srv/dl"}}
    }}));
    check_capabilities(&c, &allow).unwrap();
    let c = caps(json!({"goog:chromeOptions": {"prefs": {"savefile.default_directory": "/x"}}}));
    assert!(check_capabilities(&c, &allow).is_err());
}

#[test]
fn allowances_are_validated() {
    assert!(LaunchAllowances::new(vec!["chromium".into()], vec![]).is_err());
    for everything in ["", "--", " - ", "\u{2212}"] {
        assert!(
            LaunchAllowances::new(vec![], vec![everything.into()]).is_err(),
            "{everything:?}"
        );
    }
    let a = LaunchAllowances::new(vec!["/opt/c".into()], vec!["--x".into()]).unwrap();
    assert!(a.allows_binary("/opt/c") && !a.allows_binary("/opt/c2"));
    assert!(a.allows("--X-y") && !a.allows("--y"));
}

#[test]
fn messages_stay_short() {
    let long = format!("--gpu-launcher={}", "a".repeat(10_000));
    let e = chrome_refusal(&[&long], &none());
    assert!(e.message.len() < 600, "{}", e.message.len());
}

/// Arbitrary JSON, with the keys the policy looks at over-represented.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        any::<String>().prop_map(Value::String),
        prop::sample::select(VECTORS).prop_map(|v| json!(v)),
    ];
    let key = prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "goog:chromeOptions",
            "moz:firefoxOptions",
            "ms:edgeOptions",
            "gridiron:options",
            "args",
            "binary",
            "env",
            "profile",
            "prefs",
            "localState",
            "debuggerAddress",
        ])
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A refused switch in some spelling a browser or wrapper might accept,
/// with its canonical name.
fn spelled() -> impl Strategy<Value = (Vec<String>, &'static str)> {
    (
        prop::sample::select(VECTORS),
        prop::collection::vec(any::<bool>(), 40),
        prop::sample::select(vec!["-", "--", "---", "\u{2212}\u{2212}", "\u{2014}"]),
        prop::sample::select(vec!["", " ", "\t", "\n", "\r\n", "\u{a0}"]),
        prop::sample::select(vec!["", " ", "\t", "\n"]),
        0..4u8,
        prop::collection::vec("[a-z=,./ -]{0,12}", 0..3),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(v, upper, dashes, before, after, form, others, at)| {
            let bare = v.trim_start_matches('-');
            let cased: String = bare
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
                .collect();
            let switch = format!("{before}{dashes}{cased}{after}");
            let mut args: Vec<String> = others
                .into_iter()
                .map(|o| format!("--lang{o}").replace(['\n', '\t'], ""))
                .filter(|o| check_arg("test", o, &none()).is_ok())
                .collect();
            let mut mine = match form {
                0 => vec![switch],
                1 => vec![format!("{switch}=touch /tmp/marker")],
                2 => vec![switch, "touch /tmp/marker".into()],
                _ => vec![format!("--window-size=1,1 {switch}=x")],
            };
            let at = at.index(args.len() + 1);
            for (i, a) in mine.drain(..).enumerate() {
                args.insert(at + i, a);
            }
            (args, v)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_capabilities_never_panic(v in any_json()) {
        if let Value::Object(m) = &v {
            let _ = check_capabilities(m, &none());
        }
        let body = json!({"capabilities": {"alwaysMatch": v.clone(), "firstMatch": [v.clone()]}});
        if let Ok(r) = parse_new_session(&body) {
            let _ = check_request(&r, &none());
        }
        let strings: Vec<String> = v.as_array().map(|a| a.iter().map(|x| x.to_string()).collect()).unwrap_or_default();
        let _ = check_switches("/cdp", &strings, &none());
    }

    #[test]
    fn no_spelling_lets_a_refused_switch_through((args, canonical) in spelled()) {
        for key in ["goog:chromeOptions", "moz:firefoxOptions", "ms:edgeOptions"] {
            let c = caps(json!({ key: {"args": args} }));
            let e = check_capabilities(&c, &none());
            prop_assert!(e.is_err(), "{args:?} passed under {key}");
            let e = e.unwrap_err();
            prop_assert_eq!(e.code, ErrorCode::InvalidArgument);
            prop_assert!(e.message.contains(canonical), "{canonical} not named: {}", e.message);
        }
        let e = check_switches("/cdp", &args, &none());
        prop_assert!(e.is_err(), "{args:?} passed as CDP switches");
    }
}

#[test]
fn addons_come_with_the_request_not_from_the_host() {
    let refused =
        check_addon_install(br#"{"path": "/tmp/evil.xpi", "temporary": true}"#).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidArgument);
    assert!(refused.message.contains("path"), "{}", refused.message);
    assert!(check_addon_install(br#"{" PATH ": "/x"}"#).is_err());
    assert!(check_addon_install(b"not json").is_err());
    assert!(check_addon_install(br#"{"addon": "UEsDBA==", "temporary": true}"#).is_ok());
}
