//! Block compression algorithms.

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, Result};

/// Compression applied to SST blocks. In JSON/config it is spelled
/// `"none"`, `"lz4"` or `"zstd"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as is.
    None,
    /// LZ4 block format (no frame, no size prefix).
    #[default]
    Lz4,
    /// A single Zstandard frame (level 3).
    Zstd,
}

/// zstd level used by the encoder.
pub const ZSTD_LEVEL: i32 = 3;

impl Compression {
    /// The byte stored in block frames: 0 none, 1 lz4, 2 zstd.
    pub fn to_byte(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zstd => 2,
        }
    }

    /// Inverse of [`Compression::to_byte`]; unknown bytes are `Corrupt`.
    pub fn from_byte(b: u8) -> Result<Self> {
        match b {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Lz4),
            2 => Ok(Compression::Zstd),
            other => Err(FormatError::corrupt(
                "block frame",
                format!("unknown compression byte {other}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_json() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            assert_eq!(Compression::from_byte(c.to_byte()).unwrap(), c);
        }
        assert!(Compression::from_byte(3).is_err());
        assert_eq!(
            serde_json::to_string(&Compression::Zstd).unwrap(),
            "\"zstd\""
        );
        let c: Compression = serde_json::from_str("\"none\"").unwrap();
        assert_eq!(c, Compression::None);
        assert_eq!(Compression::default(), Compression::Lz4);
    }
}
