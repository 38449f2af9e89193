//! The error type shared by every encoder and decoder of this crate.

/// Everything that can go wrong while encoding or decoding Silt formats.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The bytes are not a valid encoding: bad magic, checksum mismatch,
    /// truncation, inconsistent lengths, unknown enum byte, bad JSON, ...
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which structure was being decoded (e.g. `"block"`, `"wal segment"`).
        what: &'static str,
        /// Human-readable description of the problem.
        detail: String,
    },
    /// The bytes carry a format version this reader does not understand.
    #[error("unsupported {what} format version {version}")]
    UnsupportedVersion {
        /// Which structure carried the version.
        what: &'static str,
        /// The version found.
        version: u16,
    },
    /// The caller passed arguments that violate an API contract
    /// (e.g. [`crate::sst::SstBuilder::add`] out of order).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl FormatError {
    /// Shorthand for building a [`FormatError::Corrupt`].
    pub fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        FormatError::Corrupt {
            what,
            detail: detail.into(),
        }
    }

    /// True for [`FormatError::Corrupt`].
    pub fn is_corrupt(&self) -> bool {
        matches!(self, FormatError::Corrupt { .. })
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
