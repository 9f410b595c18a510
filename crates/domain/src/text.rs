//! Bounding text that comes from outside (pages, servers) before it is kept.

/// Cuts `s` to at most `max` bytes on a character boundary; `true` if it was cut.
pub fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_on_a_character_boundary() {
        let mut s = "aé".to_string();
        assert!(super::cut(&mut s, 2));
        assert_eq!(s, "a");
        let mut s = "abc".to_string();
        assert!(!super::cut(&mut s, 3));
        assert_eq!(s, "abc");
    }
}
