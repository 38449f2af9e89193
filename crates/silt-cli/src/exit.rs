//! Exit codes and the mapping from errors to them.

use std::fmt;

use silt::{CloseReason, ErrorKind};

/// Success.
pub const OK: u8 = 0;
/// `get` of an absent key.
pub const NOT_FOUND: u8 = 1;
/// Bad arguments, URL, settings or key/value (clap also uses 2 for its usage errors).
pub const USAGE: u8 = 2;
/// Another writer fenced this one.
pub const FENCED: u8 = 3;
/// Everything else: store unavailable, corruption, internal errors, panics.
pub const OTHER: u8 = 4;

/// An error caused by the user's input (not by the engine), reported with exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code for `err`: the first Silt or usage error found in its chain decides.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<silt::Error>() {
            return match e.kind() {
                ErrorKind::InvalidInput => USAGE,
                ErrorKind::Closed(CloseReason::Fenced) => FENCED,
                _ => OTHER,
            };
        }
        if cause.is::<UsageError>() {
            return USAGE;
        }
    }
    OTHER
}

/// `err` and its causes on one line. Causes whose text the line already holds (object store
/// errors repeat their sources in their own message) are left out; newlines become spaces.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let msg = cause.to_string();
        let msg = msg.trim();
        if msg.is_empty() || line.contains(msg) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(msg);
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// True when `err` is a broken pipe on stdout (e.g. `silt scan | head`): not worth reporting.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(std::io::Error);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "store failed: {}", self.0)
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn one_line_drops_repeated_causes_and_newlines() {
        let inner = std::io::Error::other("status 403:\n<Error>\n  bad\n</Error>");
        let err = anyhow::Error::new(Wrapper(inner)).context("cannot open s3://b");
        assert_eq!(
            one_line(&err),
            "cannot open s3://b: store failed: status 403: <Error> bad </Error>"
        );
        assert_eq!(code_for(&err), OTHER);
        let err = anyhow::Error::new(UsageError("bad flag".into())).context("reading");
        assert_eq!(one_line(&err), "reading: bad flag");
        assert_eq!(code_for(&err), USAGE);
    }

    #[test]
    fn silt_kinds_map_to_codes() {
        let code = |e: silt::Error| code_for(&anyhow::Error::new(e).context("ctx"));
        assert_eq!(code(silt::Error::Fenced("epoch 2".into())), FENCED);
        assert_eq!(code(silt::Error::InvalidInput("empty key".into())), USAGE);
        assert_eq!(code(silt::Error::ReadOnly), USAGE);
        assert_eq!(code(silt::Error::Closed), OTHER);
        assert_eq!(code(silt::Error::Internal("x".into())), OTHER);
    }
}
