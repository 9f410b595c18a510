//! W3C WebDriver errors: the codes, their HTTP status, and where an error came from.

use serde_json::{json, Value};
use std::fmt;

/// A W3C WebDriver error code (the `error` field of an error response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A command's arguments are invalid or incomplete (also malformed JSON).
    InvalidArgument,
    /// The session id is not known to the grid, or the session has ended.
    InvalidSessionId,
    /// The route does not exist.
    UnknownCommand,
    /// The route exists, but not for this HTTP method.
    UnknownMethod,
    /// A new session could not be created.
    SessionNotCreated,
    /// Anything else that went wrong in the grid or behind it.
    UnknownError,
    /// An operation did not finish in time.
    Timeout,
    /// The operation is not supported.
    UnsupportedOperation,
}

impl ErrorCode {
    /// The string clients match on.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid argument",
            ErrorCode::InvalidSessionId => "invalid session id",
            ErrorCode::UnknownCommand => "unknown command",
            ErrorCode::UnknownMethod => "unknown method",
            ErrorCode::SessionNotCreated => "session not created",
            ErrorCode::UnknownError => "unknown error",
            ErrorCode::Timeout => "timeout",
            ErrorCode::UnsupportedOperation => "unsupported operation",
        }
    }

    /// Every code.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::InvalidArgument,
        ErrorCode::InvalidSessionId,
        ErrorCode::UnknownCommand,
        ErrorCode::UnknownMethod,
        ErrorCode::SessionNotCreated,
        ErrorCode::UnknownError,
        ErrorCode::Timeout,
        ErrorCode::UnsupportedOperation,
    ];

    /// The code with this W3C name, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The HTTP status the W3C specification assigns to this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::InvalidSessionId | ErrorCode::UnknownCommand => 404,
            ErrorCode::UnknownMethod => 405,
            ErrorCode::SessionNotCreated
            | ErrorCode::UnknownError
            | ErrorCode::Timeout
            | ErrorCode::UnsupportedOperation => 500,
        }
    }
}

/// Which party an error is attributed to; logged, and kept in the message so
/// a user can tell a grid fault from a browser fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The request itself was wrong.
    Client,
    /// The grid refused or failed (capacity, queue, shutdown, internal).
    Grid,
    /// The driver or browser process failed or answered with an error.
    Driver,
}

impl Origin {
    /// Its name on the wire between hubs and nodes (`client`, `grid`, `driver`).
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Client => "client",
            Origin::Grid => "grid",
            Origin::Driver => "driver",
        }
    }

    /// The origin with this name, if any.
    pub fn parse(s: &str) -> Option<Self> {
        [Origin::Client, Origin::Grid, Origin::Driver]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// An error the grid answers with. Maps to exactly one W3C error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridError {
    /// The W3C code, which fixes the HTTP status.
    pub code: ErrorCode,
    /// Who caused it.
    pub origin: Origin,
    /// Human-readable detail.
    pub message: String,
}

impl GridError {
    /// An error with an explicit code and origin.
    pub fn new(code: ErrorCode, origin: Origin, message: impl Into<String>) -> Self {
        GridError {
            code,
            origin,
            message: message.into(),
        }
    }

    /// The client sent something invalid.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, Origin::Client, message)
    }

    /// The session is unknown or has ended.
    pub fn invalid_session(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidSessionId, Origin::Client, message)
    }

    /// The grid could not create a session.
    pub fn not_created(origin: Origin, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::SessionNotCreated, origin, message)
    }

    /// HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// The W3C error body: `{"value":{"error","message","stacktrace"}}`.
    pub fn to_json(&self) -> Value {
        json!({
            "value": {
                "error": self.code.as_str(),
                "message": self.message,
                "stacktrace": format!("gridiron ({} error)", self.origin.as_str()),
            }
        })
    }
}

impl fmt::Display for GridError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.as_str(),
            self.origin.as_str(),
            self.message
        )
    }
}

impl std::error::Error for GridError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_w3c_table() {
        assert_eq!(ErrorCode::InvalidArgument.http_status(), 400);
        assert_eq!(ErrorCode::InvalidSessionId.http_status(), 404);
        assert_eq!(ErrorCode::UnknownCommand.http_status(), 404);
        assert_eq!(ErrorCode::UnknownMethod.http_status(), 405);
        assert_eq!(ErrorCode::SessionNotCreated.http_status(), 500);
        assert_eq!(ErrorCode::UnknownError.http_status(), 500);
        assert_eq!(ErrorCode::Timeout.http_status(), 500);
    }

    #[test]
    fn error_body_has_the_w3c_shape() {
        let e = GridError::invalid_session("no such session: abc");
        let v = e.to_json();
        assert_eq!(v["value"]["error"], "invalid session id");
        assert_eq!(v["value"]["message"], "no such session: abc");
        assert!(v["value"]["stacktrace"]
            .as_str()
            .unwrap()
            .contains("client"));
        assert_eq!(e.http_status(), 404);
    }
}
