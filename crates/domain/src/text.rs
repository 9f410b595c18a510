//! Bounding text that comes from outside (pages, servers) before it is kept.

/// The longest start of `s` of at most `max` bytes that ends on a character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    &s[..at]
}

/// Cuts `s` to at most `max` bytes on a character boundary; `true` if it was cut.
pub fn cut(s: &mut String, max: usize) -> bool {
    let keep = prefix(s, max).len();
    let was = s.len();
    s.truncate(keep);
    keep < was
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_on_a_character_boundary() {
        let mut s = "aé".to_string();
        assert!(super::cut(&mut s, 2));
        assert_eq!(s, "a");
        assert_eq!(super::prefix("aé", 2), "a");
        let mut s = "abc".to_string();
        assert!(!super::cut(&mut s, 3));
        assert_eq!(s, "abc");
    }
}
