//! Errors: one public enum whose [`ErrorKind`] tells the caller what to do.

use std::sync::Arc;

use silt_format::FormatError;

/// What the caller can do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Another writer opened the database; this handle must be dropped.
    Fenced,
    /// Data read from storage failed validation; nothing was guessed.
    Corrupt,
    /// The request (key, value, settings, URL) is invalid; fix it and retry.
    InvalidInput,
    /// The object store could not be reached or refused the request; retry later.
    Unavailable,
    /// The database was closed, or an earlier fatal error stopped it.
    Closed,
    /// A bug or an unexpected state.
    Internal,
}

/// The error type of every fallible Silt operation.
#[derive(Clone, Debug, thiserror::Error)]
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
    /// A bug or unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The kind of the error, to decide what to do about it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Fenced(_) => ErrorKind::Fenced,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::InvalidInput(_) | Error::InvalidSettings(_) | Error::ReadOnly => {
                ErrorKind::InvalidInput
            }
            Error::Store { source, .. } => match source.as_ref() {
                object_store::Error::NotFound { .. } => ErrorKind::Corrupt,
                // Wrong credentials or permissions: a configuration problem, not an outage.
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. } => ErrorKind::InvalidInput,
                _ => ErrorKind::Unavailable,
            },
            Error::Closed => ErrorKind::Closed,
            Error::Stopped(inner) => match inner.kind() {
                ErrorKind::Fenced => ErrorKind::Fenced,
                ErrorKind::Corrupt => ErrorKind::Corrupt,
                _ => ErrorKind::Closed,
            },
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// True when this error (or the error that stopped the database) is a fencing error.
    pub fn is_fenced(&self) -> bool {
        self.kind() == ErrorKind::Fenced
    }

    pub(crate) fn corrupt(object: impl Into<String>, source: FormatError) -> Self {
        Error::Corrupt {
            object: object.into(),
            source: Arc::new(source),
        }
    }

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
