//! `silt serve`: the Redis protocol in front of a database (issue "`silt serve`"). So far
//! the protocol codec (`resp.rs`); the server, its commands and its tests build on it.
// The codec lands before the server that calls it; its tests use all of it.
#![allow(
    dead_code,
    reason = "the RESP codec lands before `silt serve`, which will use it"
)]

pub mod resp;
