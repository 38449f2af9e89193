//! Errors: one public enum whose [`ErrorKind`] tells the caller what to do.

use std::sync::Arc;

use silt_format::FormatError;

/// What the caller can do about an error: the actionable level of Silt's two-level errors
/// ([`Error`] is the detailed level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object store could not be reached, refused the request, or kept a conflict
    /// going: retry later. Nothing acknowledged was lost.
    Unavailable,
    /// The request (key, value, batch, settings, URL, credentials) is invalid: fix it.
    InvalidInput,
    /// Data read from storage failed validation, or an object the database needs is
    /// missing; nothing was guessed.
    Corrupt,
    /// The handle no longer works, for the reason given: drop it (and reopen, for
    /// `Poisoned`).
    Closed(CloseReason),
    /// A bug or an unexpected state.
    Internal,
}

/// Why a handle is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`crate::Db::close`] was called.
    Clean,
    /// Another writer owns the database; this process must not write or delete.
    Fenced,
    /// A failure made the handle's durability uncertain (a failed `fdatasync` of the local
    /// log, a WAL or flush that stopped after an error): reopen to recover.
    Poisoned,
}

/// The error type of every fallible Silt operation: the detail. [`Error::kind`] gives
/// the actionable [`ErrorKind`].
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A newer writer owns the database (its epoch is in the message).
    #[error("fenced: {0}")]
    Fenced(String),
    /// An object failed validation.
    #[error("corrupt object {object}: {source}")]
    Corrupt {
        /// Path of the object that failed validation.
        object: String,
        /// What was wrong with it.
        #[source]
        source: Arc<FormatError>,
    },
    /// Invalid key, value, batch or argument.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Invalid settings or store URL.
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    /// The object store failed.
    #[error("object store error during {op} {path}: {source}")]
    Store {
        /// The operation that failed (get, put, list, ...).
        op: &'static str,
        /// The object or prefix it was applied to.
        path: String,
        /// The underlying error.
        #[source]
        source: Arc<object_store::Error>,
    },
    /// The database is closed or read-only.
    #[error("database is closed")]
    Closed,
    /// The database is open read-only.
    #[error("database is open read-only")]
    ReadOnly,
    /// An earlier fatal error stopped the database; the original error is kept.
    #[error("database stopped after an earlier error: {0}")]
    Stopped(Arc<Error>),
    /// A local file operation (local log, disk cache) failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was done (open, pwrite, fdatasync, ...).
        op: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The object store did not answer in time: what waited, and how long. Nothing was
    /// acknowledged; a write that timed out may still become durable.
    #[error("object store unavailable: {what} waited {waited:?}")]
    Timeout {
        /// What waited (e.g. "a Remote write for its WAL segment").
        what: &'static str,
        /// How long.
        waited: std::time::Duration,
    },
    /// A checkpoint cannot be used as asked: no checkpoint of that name, it has expired,
    /// one of that name exists already, or the manifest it would pin is no longer
    /// protected (kind `InvalidInput`).
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A read-only handle's lease on its manifest lapsed (renewals failed past its
    /// lifetime, or the lease was deleted): garbage collection may since have deleted what
    /// it reads, so it reads nothing more (kind `Closed(Poisoned)`: reopen).
    #[error("reader lease lost: {0}")]
    LeaseLost(String),
    /// A follower has not caught up with the store within `follower.max_staleness`
    /// (the store is unreachable, or the follower falls behind): it serves nothing older
    /// rather than stale data (kind `Unavailable`: retry later).
    #[error("follower is stale: {0}")]
    Stale(String),
    /// A bug or unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The kind of the error, to decide what to do about it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Fenced(_) => ErrorKind::Closed(CloseReason::Fenced),
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::InvalidInput(_)
            | Error::InvalidSettings(_)
            | Error::ReadOnly
            | Error::Checkpoint(_) => ErrorKind::InvalidInput,
            Error::LeaseLost(_) => ErrorKind::Closed(CloseReason::Poisoned),
            Error::Store { source, .. } => store_kind(source),
            Error::Io { .. } | Error::Timeout { .. } | Error::Stale(_) => ErrorKind::Unavailable,
            Error::Closed => ErrorKind::Closed(CloseReason::Clean),
            Error::Stopped(inner) => match inner.kind() {
                ErrorKind::Corrupt => ErrorKind::Corrupt,
                ErrorKind::Closed(reason) => ErrorKind::Closed(reason),
                ErrorKind::Unavailable | ErrorKind::InvalidInput | ErrorKind::Internal => {
                    ErrorKind::Closed(CloseReason::Poisoned)
                }
            },
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// True when this error (or the error that stopped the database) is a fencing error:
    /// its kind is `Closed(Fenced)`.
    pub fn is_fenced(&self) -> bool {
        self.kind() == ErrorKind::Closed(CloseReason::Fenced)
    }

    /// Worth retrying: the store failed transiently or did not answer in time.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Error::Store { .. } | Error::Timeout { .. })
            && self.kind() == ErrorKind::Unavailable
    }

    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.to_owned(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn corrupt(object: impl Into<String>, source: FormatError) -> Self {
        Error::Corrupt {
            object: object.into(),
            source: Arc::new(source),
        }
    }

    #[expect(
        clippy::needless_pass_by_value,
        reason = "callers pass a path by reference or its name by value alike"
    )]
    pub(crate) fn store(
        op: &'static str,
        path: impl ToString,
        source: object_store::Error,
    ) -> Self {
        Error::Store {
            op,
            path: path.to_string(),
            source: Arc::new(source),
        }
    }
}

/// Result alias used throughout Silt.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kind of an object-store error, variant by variant.
#[expect(
    clippy::match_same_arms,
    reason = "the transient variants are listed to document them; the wildcard is for variants \
              object_store adds later"
)]
fn store_kind(e: &object_store::Error) -> ErrorKind {
    use object_store::Error as E;
    match e {
        // An object the database references is gone.
        E::NotFound { .. } => ErrorKind::Corrupt,
        // Credentials, permissions, configuration or a store that lacks a feature Silt
        // needs (conditional PUT): nothing a retry fixes.
        E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::UnknownConfigurationKey { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. } => ErrorKind::InvalidInput,
        // object_store maps 401/403 to these variants on most requests but reports some
        // (an S3 or Azure LIST, for one) as `Generic` with the status in the text: wrong
        // credentials there must not be retried as a transient failure either.
        E::Generic { source, .. } if denied_status(source.as_ref()) => ErrorKind::InvalidInput,
        // Transport, server and contention errors that outlived the retries.
        E::Generic { .. }
        | E::JoinError { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. } => ErrorKind::Unavailable,
        // `object_store::Error` is non-exhaustive: a variant added later is a store
        // failure until it is mapped here.
        _ => ErrorKind::Unavailable,
    }
}

/// Whether an error (or one of its sources) is an HTTP 401 or 403 answer, as
/// `object_store` words it ("... status code: 403 Forbidden ...").
fn denied_status(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        let text = e.to_string();
        if text.contains("status code: 401") || text.contains("status code: 403") {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(e: object_store::Error) -> Error {
        Error::store("get", "x", e)
    }

    fn generic() -> object_store::Error {
        object_store::Error::Generic {
            store: "test",
            source: "connection reset".into(),
        }
    }

    #[test]
    fn kinds_tell_what_to_do() {
        use CloseReason::*;
        use ErrorKind::*;
        let not_found = object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        };
        let denied = object_store::Error::PermissionDenied {
            path: "x".into(),
            source: "no".into(),
        };
        assert_eq!(store(not_found).kind(), Corrupt);
        assert_eq!(store(denied).kind(), InvalidInput);
        assert_eq!(store(generic()).kind(), Unavailable);
        let forbidden = object_store::Error::Generic {
            store: "S3",
            source: "Error performing list request: Server returned non-2xx status code: \
                     403 Forbidden: SignatureDoesNotMatch"
                .into(),
        };
        assert_eq!(store(forbidden).kind(), InvalidInput);
        assert_eq!(Error::Fenced("epoch 2".into()).kind(), Closed(Fenced));
        assert!(Error::Fenced("epoch 2".into()).is_fenced());
        assert_eq!(Error::Closed.kind(), Closed(Clean));
        assert_eq!(Error::ReadOnly.kind(), InvalidInput);
        let io = Error::io(
            "fdatasync",
            std::path::Path::new("/log"),
            std::io::Error::other("EIO"),
        );
        assert_eq!(io.kind(), Unavailable);
        // Stopped by an error: poisoned, except fencing and corruption, which say so.
        let stopped = |e: Error| Error::Stopped(Arc::new(e));
        assert_eq!(stopped(io).kind(), Closed(Poisoned));
        assert_eq!(stopped(store(generic())).kind(), Closed(Poisoned));
        assert_eq!(stopped(Error::Fenced("e".into())).kind(), Closed(Fenced));
        assert_eq!(
            stopped(Error::corrupt("m", FormatError::corrupt("manifest", "crc"))).kind(),
            Corrupt
        );
        assert_eq!(Error::Internal("bug".into()).kind(), Internal);
        assert_eq!(Error::Checkpoint("gone".into()).kind(), InvalidInput);
        assert_eq!(Error::LeaseLost("lapsed".into()).kind(), Closed(Poisoned));
    }
}
