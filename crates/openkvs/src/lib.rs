//! The library half of the `openkvs` crate: the AWS-CLI-compatible client ([`client`]) and the PutMedia
//! client ([`put_media`]), shared by the `openkvs` binary (`src/main.rs`), the fuzz targets (`fuzz/`), which
//! drive the client's parsers ([`client::shorthand`], [`client::jmespath`], [`client::value`]) directly, and
//! the load generator (`crates/loadgen`), which drives many PutMedia connections with the same signing,
//! body stream and ack accounting.

pub mod client;
pub mod put_media;
