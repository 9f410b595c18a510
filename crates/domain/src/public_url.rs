//! The address clients should use to reach the grid, for URLs the grid writes
//! into responses (CDP and BiDi websockets). Never the node's loopback.

/// What a request says about how it reached the grid.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestAddress<'a> {
    /// `Host` header.
    pub host: Option<&'a str>,
    /// `X-Forwarded-Host` header (first entry wins).
    pub forwarded_host: Option<&'a str>,
    /// `X-Forwarded-Proto` header (first entry wins).
    pub forwarded_proto: Option<&'a str>,
    /// RFC 7239 `Forwarded` header.
    pub forwarded: Option<&'a str>,
}

/// The grid's public HTTP base URL (`http://host:port`, no trailing slash):
/// the configured one if set, else what proxies in front reported, else `Host`.
pub fn public_base(configured: Option<&str>, req: RequestAddress<'_>) -> String {
    if let Some(c) = configured.filter(|c| !c.is_empty()) {
        return c.trim_end_matches('/').to_string();
    }
    let first = |v: &str| v.split(',').next().unwrap_or("").trim().to_string();
    let (mut host, mut proto) = (None, None);
    if let Some(fwd) = req.forwarded {
        // Only the first (client-most) element matters.
        for pair in fwd.split(',').next().unwrap_or("").split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                let v = v.trim_matches('"').to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "host" if !v.is_empty() => host = Some(v),
                    "proto" if !v.is_empty() => proto = Some(v.to_ascii_lowercase()),
                    _ => {}
                }
            }
        }
    }
    let host = host
        .or_else(|| req.forwarded_host.map(first).filter(|h| !h.is_empty()))
        .or_else(|| req.host.map(first).filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost:4444".to_string());
    let proto = proto
        .or_else(|| req.forwarded_proto.map(|p| first(p).to_ascii_lowercase()))
        .filter(|p| p == "http" || p == "https")
        .unwrap_or_else(|| "http".to_string());
    format!("{proto}://{host}")
}

/// The websocket form of an HTTP base URL (`http` -> `ws`, `https` -> `wss`).
pub fn websocket_base(http_base: &str) -> String {
    if let Some(rest) = http_base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = http_base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        http_base.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_url_wins() {
        let r = RequestAddress {
            host: Some("10.0.0.1:4444"),
            ..Default::default()
        };
        assert_eq!(
            public_base(Some("https://grid.example/"), r),
            "https://grid.example"
        );
    }

    #[test]
    fn host_header_is_the_fallback() {
        let r = RequestAddress {
            host: Some("10.0.0.1:4444"),
            ..Default::default()
        };
        assert_eq!(public_base(None, r), "http://10.0.0.1:4444");
    }

    #[test]
    fn proxies_are_believed() {
        let r = RequestAddress {
            host: Some("127.0.0.1:4444"),
            forwarded_host: Some("grid.example, inner.proxy"),
            forwarded_proto: Some("https"),
            forwarded: None,
        };
        assert_eq!(public_base(None, r), "https://grid.example");
        let r = RequestAddress {
            host: Some("127.0.0.1:4444"),
            forwarded: Some(r#"for=1.2.3.4;host="edge.example:8443";proto=https, for=5.6.7.8"#),
            ..Default::default()
        };
        assert_eq!(public_base(None, r), "https://edge.example:8443");
        let r = RequestAddress {
            host: Some("127.0.0.1:4444"),
            forwarded_proto: Some("gopher"),
            ..Default::default()
        };
        assert_eq!(public_base(None, r), "http://127.0.0.1:4444");
    }

    #[test]
    fn websocket_schemes() {
        assert_eq!(websocket_base("http://a:1"), "ws://a:1");
        assert_eq!(websocket_base("https://a"), "wss://a");
    }
}
