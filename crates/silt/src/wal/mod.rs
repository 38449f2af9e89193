//! Write-ahead logs. `remote`: segments in the object store (always on).
//! `replay`: recovery of remote segments past the manifest's replay point.

pub mod local;
pub(crate) mod remote;
pub(crate) mod replay;
