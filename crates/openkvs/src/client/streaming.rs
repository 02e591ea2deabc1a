//! Streaming output (awscli `StreamingOutputArgument`): the response body of GetMedia,
//! GetMediaForFragmentList and GetClip goes to the `outfile` argument, written chunk by chunk as it arrives
//! (memory stays bounded by one network read, and TCP flow control slows the server down when the disk is
//! slower), and the output document is made of the other output members, which are HTTP headers
//! (`Content-Type`).
//!
//! As with the AWS CLI, the file is created only once the service has answered with success (an error leaves
//! no file), its content is whatever arrived even when the transfer fails half-way, and the output document
//! is printed only when the body has ended: a live GetMedia ends when the server ends it, the read timeout
//! strikes, or the user stops it. Every chunk is handed to the kernel (`write_all` on an unbuffered file)
//! before the next one is awaited, so on SIGINT or SIGTERM there is nothing left to flush: the command stops
//! between two chunks and exits 130 (SIGINT, with awscli's newline on standard output) or 143 (SIGTERM).

use super::model::{Operation, Service};
use super::value::Value;
use super::{debug_log, CliError, Client};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::future::Future;
use std::io::Write;

pub(crate) const SIGINT: i32 = 2;
pub(crate) const SIGTERM: i32 = 15;

impl Client {
    /// Calls a streaming-output operation: `payload` (the output member that is the body) goes to `outfile`;
    /// returns the output document (the header-bound members).
    pub(super) async fn download(
        &mut self,
        service: &Service,
        op: &Operation,
        body: &Value,
        payload: &str,
        outfile: &str,
    ) -> Result<Value, CliError> {
        let endpoint = self.endpoint_for(service, op, body).await?;
        let response = self
            .with_retries(|| self.request_once(&endpoint, op, body))
            .await?;
        let url = response.url().to_string();
        let document = header_document(service, &op.output, payload, response.headers());
        let mut file = std::fs::File::create(outfile)
            .map_err(|e| CliError::Other(os_error_text(&e, Some(outfile))))?;
        debug_log(
            self.debug,
            "botocore.parsers",
            &format!("Response body:\n<streaming body, written to {outfile}>"),
        );
        let written = write_body(response.bytes_stream(), &mut file)
            .await
            .map_err(|e| match e {
                BodyError::Read(e) if e.is_timeout() => {
                    CliError::Other(format!("Read timeout on endpoint URL: \"{url}\""))
                }
                BodyError::Read(e) => CliError::Other(format!(
                    "An error occurred while reading from response stream: {e}"
                )),
                BodyError::Write(e) => CliError::Other(os_error_text(&e, None)),
            })?;
        debug_log(
            self.debug,
            "openkvs.client",
            &format!("Wrote {written} bytes to {outfile}"),
        );
        Ok(document)
    }
}

/// The output members bound to response headers (botocore `_parse_non_payload_attrs`), in model order,
/// without the payload member; a header that is absent leaves its member out.
pub(crate) fn header_document(
    service: &Service,
    output_shape: &str,
    payload: &str,
    headers: &reqwest::header::HeaderMap,
) -> Value {
    let mut document = Value::Map(Vec::new());
    for (member, header) in &service.shape(output_shape).header_members {
        if member == payload {
            continue;
        }
        if let Some(value) = headers.get(header.as_str()) {
            // botocore decodes header values as ISO-8859-1, which maps every byte to one character.
            let text: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
            document.set(member, Value::Str(text));
        }
    }
    document
}

#[derive(Debug)]
pub(crate) enum BodyError<E> {
    /// The connection failed or timed out.
    Read(E),
    /// The file could not take the bytes (disk full, …).
    Write(std::io::Error),
}

/// Copies `body` into `out` chunk by chunk; returns the byte count once the body has ended.
pub(crate) async fn write_body<S, E>(mut body: S, out: &mut impl Write) -> Result<u64, BodyError<E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(BodyError::Read)?;
        out.write_all(&chunk).map_err(BodyError::Write)?;
        written += chunk.len() as u64;
    }
    Ok(written)
}

/// Runs `work` unless `stop` (a signal number) comes first. `work` is dropped at an await point, so a
/// download stops between two chunks, each written whole.
pub(crate) async fn unless_interrupted<T>(
    work: impl Future<Output = Result<T, CliError>>,
    stop: impl Future<Output = i32>,
) -> Result<T, CliError> {
    tokio::select! {
        biased;
        signal = stop => Err(CliError::Interrupted(signal)),
        result = work => result,
    }
}

/// Resolves to the number of the first SIGINT or SIGTERM. The handlers are installed now, before the
/// request is sent, so a signal that arrives while the server is still to answer is caught too.
pub(crate) fn interruption() -> impl Future<Output = i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        // A handler that cannot be installed leaves that signal's default action (the process ends).
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(interrupt) => SIGINT,
            _ = wait(terminate) => SIGTERM,
        }
    }
}

/// An `OSError` as Python prints it: `[Errno 2] No such file or directory: 'dir/out.mkv'`.
pub(crate) fn os_error_text(error: &std::io::Error, path: Option<&str>) -> String {
    let Some(code) = error.raw_os_error() else {
        return error.to_string();
    };
    let full = error.to_string();
    let message = full
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&full);
    match path {
        Some(p) => format!("[Errno {code}] {message}: {}", py_repr(p)),
        None => format!("[Errno {code}] {message}"),
    }
}

/// Python `repr(str)` for the quoting: single quotes unless the text has one and no double quote.
fn py_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::super::model;
    use super::*;
    use std::time::Duration;

    fn chunks(parts: &[&'static [u8]]) -> Vec<Result<Bytes, String>> {
        parts.iter().map(|p| Ok(Bytes::from_static(p))).collect()
    }

    #[tokio::test]
    async fn every_chunk_is_written_in_order() {
        let body = futures::stream::iter(chunks(&[b"\x1a\x45\xdf\xa3", b"", b"cluster", b"tail"]));
        let mut out = Vec::new();
        let written = write_body(body, &mut out).await.unwrap();
        assert_eq!(out, b"\x1a\x45\xdf\xa3clustertail");
        assert_eq!(written, 15);
    }

    #[tokio::test]
    async fn a_broken_connection_keeps_what_arrived_before_it() {
        let mut items = chunks(&[b"first", b"second"]);
        items.push(Err("connection reset".to_owned()));
        items.extend(chunks(&[b"never"]));
        let mut out = Vec::new();
        let error = write_body(futures::stream::iter(items), &mut out)
            .await
            .unwrap_err();
        assert!(matches!(error, BodyError::Read(ref m) if m == "connection reset"));
        assert_eq!(out, b"firstsecond");
    }

    #[tokio::test]
    async fn a_full_disk_is_a_write_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(28))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let body = futures::stream::iter(chunks(&[b"x"]));
        let error = write_body(body, &mut Full).await.unwrap_err();
        let BodyError::Write(e) = error else {
            panic!("expected a write error")
        };
        assert_eq!(
            os_error_text(&e, None),
            "[Errno 28] No space left on device"
        );
    }

    #[tokio::test]
    async fn an_interrupted_live_body_leaves_the_chunks_that_arrived_in_the_file() {
        // A live GetMedia: two chunks, then nothing (the server waits for the next fragment).
        let body = futures::stream::iter(chunks(&[b"fragment-1", b"fragment-2"]))
            .chain(futures::stream::pending());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.mkv");
        let mut file = std::fs::File::create(&path).unwrap();
        let work = async {
            write_body(body, &mut file)
                .await
                .map_err(|_| CliError::Other("read".into()))
        };
        let stop = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            SIGTERM
        };
        let result = unless_interrupted(work, stop).await;
        assert!(matches!(result, Err(CliError::Interrupted(SIGTERM))));
        assert_eq!(std::fs::read(&path).unwrap(), b"fragment-1fragment-2");
    }

    #[tokio::test]
    async fn work_that_ends_first_is_not_interrupted() {
        let result = unless_interrupted(async { Ok(7) }, std::future::pending()).await;
        assert!(matches!(result, Ok(7)));
    }

    #[test]
    fn interrupted_exit_status_is_128_plus_the_signal() {
        assert_eq!(CliError::Interrupted(SIGINT).exit_code(), 130);
        assert_eq!(CliError::Interrupted(SIGTERM).exit_code(), 143);
        assert_eq!(CliError::Interrupted(SIGINT).render(), "");
    }

    #[test]
    fn the_output_document_is_the_content_type_header() {
        let service = model::load("kinesis-video-archived-media").unwrap();
        let op = service.operation("get-clip").unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("content-type", "video/mp4".parse().unwrap());
        headers.insert("x-amzn-requestid", "abc".parse().unwrap());
        assert_eq!(
            header_document(&service, &op.output, "Payload", &headers),
            Value::Map(vec![("ContentType".into(), Value::Str("video/mp4".into()))])
        );
        assert_eq!(
            header_document(&service, &op.output, "Payload", &Default::default()),
            Value::Map(Vec::new())
        );
    }

    #[test]
    fn os_errors_read_like_pythons() {
        let missing = std::io::Error::from_raw_os_error(2);
        assert_eq!(
            os_error_text(&missing, Some("no/dir/out.mkv")),
            "[Errno 2] No such file or directory: 'no/dir/out.mkv'"
        );
        let denied = std::io::Error::from_raw_os_error(13);
        assert_eq!(
            os_error_text(&denied, Some("it's")),
            "[Errno 13] Permission denied: \"it's\""
        );
        assert_eq!(py_repr("a'b\"c\\"), "'a\\'b\"c\\\\'");
    }
}
