//! Ids and names put into URL paths: everything but the unreserved
//! characters percent-encoded, so a crafted id cannot reach another route.

/// `s` as one path segment (`/` encoded too).
pub fn segment(s: &str) -> String {
    encode(s, b"-._~")
}

/// `s` as a path of segments (`downloads/report 1.csv` keeps its `/`).
pub fn path(s: &str) -> String {
    encode(s, b"-._~/")
}

fn encode(s: &str, kept: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || kept.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_encode_all_but_unreserved_characters() {
        assert_eq!(segment("ci-runner_1.x~"), "ci-runner_1.x~");
        assert_eq!(segment("../keys"), "..%2Fkeys");
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(segment("é"), "%C3%A9");
        assert_eq!(segment("a/b"), "a%2Fb");
    }

    #[test]
    fn paths_keep_their_slashes() {
        assert_eq!(path("downloads/report 1.csv"), "downloads/report%201.csv");
        assert_eq!(path("a%2Fb?c#d"), "a%252Fb%3Fc%23d");
        assert_eq!(path("Ünï.txt"), "%C3%9Cn%C3%AF.txt");
        assert_eq!(path("a b/c"), "a%20b/c");
    }
}
