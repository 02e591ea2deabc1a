//! `openkvs`: the server (`openkvs serve`) and its clients (`openkvs put-media`, and the AWS-CLI-compatible
//! `openkvs kinesisvideo …` / `kinesis-video-archived-media …` / `kinesis-video-media …` commands of
//! [`openkvs::client`], in the crate's library half so the fuzz targets reach its parsers).

mod serve;

use clap::{Parser, Subcommand};
use openkvs::{client, put_media};
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: under 200 producers and 2,000 viewers glibc's allocator
/// (`_int_malloc`, `malloc_consolidate`, `_int_free`) was ~18 % of the server's CPU
/// (docs/capacity.md#allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "openkvs",
    version,
    about = "A self-hosted video archive with a Kinesis Video Streams compatible API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded default: SQLite and segment files in --data-dir).
    Serve(Box<serve::ServeArgs>),
    /// Stream an MKV file or standard input into a stream as a signed PutMedia.
    PutMedia(put_media::PutMediaArgs),
}

/// Whether argv names an AWS-CLI-style service command: the first word that is neither an option nor a global
/// option's value is a service name (so `openkvs put-media --stream-name kinesisvideo …` stays `put-media`).
fn is_client_command(args: &[String]) -> bool {
    client::command_word(&args[1.min(args.len())..])
        .is_some_and(|word| client::SERVICE_NAMES.contains(&word))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if is_client_command(&args) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("openkvs: cannot start the runtime: {e}");
                return ExitCode::from(255);
            }
        };
        return runtime.block_on(client::run(args[1..].to_vec()));
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("openkvs: cannot start the runtime: {e}");
            return ExitCode::from(255);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::PutMedia(args) => put_media::run(args).await,
        }
    })
}
