//! The library half of the `openkvs` crate: the AWS-CLI-compatible client ([`client`]), shared by the
//! `openkvs` binary (`src/main.rs`) and the fuzz targets (`fuzz/`), which drive its parsers
//! ([`client::shorthand`], [`client::jmespath`], [`client::value`]) directly.

pub mod client;
