//! Keeping secrets out of logs, `Debug` output and error messages.

/// `url` with the password of its user part (if any) replaced by `***`:
/// `redis://user:pw@host:6379/0` -> `redis://user:***@host:6379/0`. A URL
/// whose user part is only a password (`redis://:pw@host`) keeps its empty
/// user; a user without a password is left as is. Anything that does not look
/// like `scheme://` is shown as `***` whole, since it cannot be told apart.
pub fn url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    // The user part ends at the last '@' before the path: a password may hold '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let (userinfo, host) = authority.split_at(at);
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{host}{tail}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::url_password;

    #[test]
    fn passwords_are_hidden() {
        let cases = [
            (
                "redis://user:s3cret@host:6379/0",
                "redis://user:***@host:6379/0",
            ),
            ("redis://:s3cret@host:6379", "redis://:***@host:6379"),
            ("rediss://u:p%40ss@h/1", "rediss://u:***@h/1"),
            ("redis://u:p@ss:w@h:1/2", "redis://u:***@h:1/2"),
            ("redis://host:6379/0", "redis://host:6379/0"),
            ("redis://user@host", "redis://user@host"),
            ("redis://u:pw@h?x=@y", "redis://u:***@h?x=@y"),
            ("not a url :pw@", "***"),
        ];
        for (url, shown) in cases {
            assert_eq!(url_password(url), shown, "{url}");
        }
    }
}
