//! `openkvs put-media`: stream an MKV file or standard input as a signed PutMedia.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PutMediaArgs {}

pub async fn run(_args: PutMediaArgs) -> ExitCode {
    eprintln!("openkvs put-media: not built yet");
    ExitCode::FAILURE
}
