//! `openkvs serve`: settings from flags, OPENKVS_* environment variables and a TOML file.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ServeArgs {}

pub async fn run(_args: ServeArgs) -> ExitCode {
    eprintln!("openkvs serve: not built yet");
    ExitCode::FAILURE
}
