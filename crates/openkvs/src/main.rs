//! `openkvs`: the server (`openkvs serve`) and its clients (`openkvs put-media`).

mod put_media;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "openkvs", version, about = "A self-hosted video archive with a Kinesis Video Streams compatible API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded default: SQLite and segment files in --data-dir).
    Serve(serve::ServeArgs),
    /// Stream an MKV file or standard input into a stream as a signed PutMedia.
    PutMedia(put_media::PutMediaArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("openkvs: cannot start the runtime: {e}");
            return ExitCode::from(255);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::PutMedia(args) => put_media::run(args).await,
        }
    })
}
