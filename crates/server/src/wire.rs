//! The rest-json wire basics shared by every operation (docs/wire.md#requests): request ids, JSON bodies in
//! and out, epoch-second timestamps, body limits, CORS.
//!
//! Choices where AWS's exact answer is unknown (docs/choices.md#request-body-edge-cases):
//! - Body that is not JSON, or a member of the wrong JSON type → `SerializationException` 400 (what
//!   Coral services answer; botocore maps it by the code). An empty body counts as `{}`.
//! - Unknown members are ignored.
//! - Body over the JSON limit (1 MiB by default) → 413 `RequestEntityTooLargeException`.
//! - Unknown path → 404 `UnknownOperationException`; a non-POST method on an operation path: the
//!   same, after authentication (signed routes authenticate first).
//! - Known KVS operations not built yet → 400 `InvalidArgumentException` "The operation X is not
//!   supported by openkvs yet." (see `ops::NOT_SUPPORTED_YET`).
//! - A query string that does not parse (a parameter given twice, bad percent-encoding) → 400
//!   `InvalidArgumentException` naming the problem.
//! - Every response carries `x-amzn-RequestId` (uuid v4); errors also the `x-amz-RequestId` mirror.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use crate::error::ApiError;
use crate::validate::Validator;

pub const X_AMZN_REQUEST_ID: &str = "x-amzn-requestid";
pub const X_AMZ_REQUEST_ID: &str = "x-amz-requestid";
pub const X_AMZN_ERROR_TYPE: &str = "x-amzn-errortype";
pub const X_AMZ_ERROR_TYPE: &str = "x-amz-errortype";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id of the request being served (set by [`request_id_layer`]); a fresh one outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| new_request_id())
}

/// A UUID v4-shaped request id. The bits come from a per-thread splitmix64 generator seeded
/// once from the OS, not from the OS on every request (a syscall per request showed in profiles);
/// request ids need to be unique, not secret.
pub fn new_request_id() -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0 | 1);
    }
    fn splitmix64(state: &Cell<u64>) -> u64 {
        let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let (hi, lo) = STATE.with(|s| (splitmix64(s), splitmix64(s)));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The request id of one request, also available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Outermost layer: gives every request a uuid v4 request id, runs the rest of the stack inside its
/// scope (so [`ApiError`] renders it), and puts `x-amzn-RequestId` on every response, success too.
pub async fn request_id_layer(mut request: Request, next: Next) -> Response {
    let id = new_request_id();
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // The API calls (POST) get their span at INFO, so every line they log names the request. The
    // HLS GETs, asked for again and again by every player, get it at DEBUG: formatting the span's
    // fields for every playlist reload cost 8 % of the LIVE playlist's throughput, and an error they
    // answer is logged with its request id anyway (`ApiError::render`).
    let span = if method == Method::GET {
        tracing::debug_span!("request", request_id = %id, %method, %path)
    } else {
        tracing::info_span!("request", request_id = %id, %method, %path)
    };
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(request))
        .instrument(span)
        .await;
    if !response.headers().contains_key(X_AMZN_REQUEST_ID) {
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(X_AMZN_REQUEST_ID, value);
        }
    }
    response.extensions_mut().extend(aws_header_case().clone());
    tracing::debug!(request_id = %id, %method, %path, status = response.status().as_u16(), "served");
    response
}

/// The spellings AWS uses for its own response headers, as a hyper header-case map.
///
/// `http` stores header names in lower case and hyper writes them so, but AWS's C producer SDK finds
/// `x-amzn-RequestId` with a case-sensitive compare (`KVS_REQUEST_ID_HEADER_NAME`), so the name must
/// go out spelt as AWS spells it (docs/wire.md#responses). hyper writes a response's header names in
/// the spelling of the header-case map in its extensions, a type it keeps private; the only way to
/// get one is to let hyper parse a request that carries those spellings with `preserve_header_case`
/// on. That is done once, over an in-memory pipe, and every response gets a clone of the map.
pub fn aws_header_case() -> &'static http::Extensions {
    static CASE: std::sync::OnceLock<http::Extensions> = std::sync::OnceLock::new();
    CASE.get_or_init(|| {
        // Its own thread and runtime: this may first run inside a runtime, which cannot block on another.
        std::thread::spawn(parse_header_case)
            .join()
            .unwrap_or_default()
    })
}

fn parse_header_case() -> http::Extensions {
    use hyper_util::rt::TokioIo;
    use tokio::io::AsyncWriteExt;
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return http::Extensions::new();
    };
    runtime.block_on(async {
        let (client, server) = tokio::io::duplex(1024);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let service =
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                if let Some(tx) = tx.lock().ok().and_then(|mut tx| tx.take()) {
                    let _ = tx.send(request.extensions().clone());
                }
                async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                        bytes::Bytes,
                    >::new(
                    )))
                }
            });
        let connection = hyper::server::conn::http1::Builder::new()
            .preserve_header_case(true)
            .serve_connection(TokioIo::new(server), service);
        let mut client = client;
        let request = format!(
            "GET / HTTP/1.1\r\nhost: x\r\n{}\r\nconnection: close\r\n\r\n",
            AWS_HEADER_SPELLINGS
                .map(|name| format!("{name}: x"))
                .join("\r\n")
        );
        let write = async move {
            let _ = client.write_all(request.as_bytes()).await;
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut sink).await;
        };
        let _ = tokio::join!(connection, write);
        rx.await.unwrap_or_default()
    })
}

/// AWS's spelling of the response headers openkvs sends that clients may look up case-sensitively.
pub(crate) const AWS_HEADER_SPELLINGS: [&str; 4] = [
    "x-amzn-RequestId",
    "x-amz-RequestId",
    "x-amzn-ErrorType",
    "x-amz-ErrorType",
];

/// Headers a browser may send to the POST APIs (docs/choices.md#cors).
const CORS_ALLOW_HEADERS: &str =
    "authorization, content-type, x-amz-date, x-amz-security-token, x-amz-user-agent, \
     x-amz-content-sha256, amz-sdk-invocation-id, amz-sdk-request";
const CORS_EXPOSE_HEADERS: &str =
    "x-amzn-RequestId, x-amzn-ErrorType, x-amz-RequestId, x-amz-ErrorType";

/// Answers CORS preflights (`OPTIONS`, unsigned) and lets browsers read responses of cross-origin calls.
pub async fn cors_layer(request: Request, next: Next) -> Response {
    let has_origin = request.headers().contains_key(http::header::ORIGIN);
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("POST, GET, OPTIONS"),
        );
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static(CORS_ALLOW_HEADERS),
        );
        h.insert("access-control-max-age", HeaderValue::from_static("86400"));
        return response;
    }
    let mut response = next.run(request).await;
    if has_origin {
        let h = response.headers_mut();
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        h.insert(
            "access-control-expose-headers",
            HeaderValue::from_static(CORS_EXPOSE_HEADERS),
        );
    }
    response
}

/// An operation's input: deserialised from the JSON body (unknown members ignored), then checked
/// against every model constraint.
pub trait Input: DeserializeOwned {
    fn validate(&self, v: &mut Validator);
}

/// Extractor for a JSON operation input and the response for its output.
pub struct AwsJson<T>(pub T);

/// Parses and validates an input body. An empty body counts as `{}` (lenient; SDKs always send `{}`).
pub fn parse_input<T: Input>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(|b| b.is_ascii_whitespace()) {
        &b"{}"[..]
    } else {
        body
    };
    let value: T = serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "a member has the wrong type",
            _ => "the body is not valid JSON",
        };
        ApiError::Serialization(format!("Could not parse the request body: {what} ({e})."))
    })?;
    let mut v = Validator::default();
    value.validate(&mut v);
    v.finish()?;
    Ok(value)
}

impl<T: Input, S: Send + Sync> FromRequest<S> for AwsJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(JSON_BODY_LIMIT);
        let bytes = read_body(request.into_body(), limit).await?;
        parse_input(&bytes).map(AwsJson)
    }
}

impl<T: Serialize> IntoResponse for AwsJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => {
                let mut response = (StatusCode::OK, body).into_response();
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(e) => ApiError::Internal(format!("serialising a response: {e}")).into_response(),
        }
    }
}

/// Extractor for a query string (the HLS GETs), like axum's `Query` but rejecting in the AWS form:
/// a duplicated or malformed parameter is `InvalidArgumentException` 400, not axum's plain text.
pub struct AwsQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AwsQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|q| AwsQuery(q.0))
            .map_err(|e| ApiError::InvalidArgument(format!("{}.", e.body_text())))
    }
}

/// Default limit of a JSON operation's body (SDK requests are a few KiB at most).
pub const JSON_BODY_LIMIT: usize = 1 << 20;

/// The configured JSON body limit, carried as a request extension.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// Reads a whole body, failing with [`ApiError::RequestTooLarge`] past `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::RequestTooLarge { limit })
        }
        Err(e) => Err(ApiError::Serialization(format!(
            "Could not read the request body: {e}."
        ))),
    }
}

/// Epoch-second timestamps as JSON numbers (docs/wire.md#requests, docs/wire.md#responses): requests send ints (botocore) or
/// fractions (JS v3); responses carry a millisecond fraction.
pub mod epoch_seconds {
    use serde::{Serialize, Serializer};
    use store::Timestamp;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        to_json(*t).serialize(s)
    }

    /// A timestamp as an epoch-second number; whole seconds print as integers.
    pub fn to_json(t: Timestamp) -> serde_json::Number {
        let ms = t.millis();
        if ms % 1000 == 0 {
            serde_json::Number::from(ms / 1000)
        } else {
            serde_json::Number::from_f64(ms as f64 / 1000.0)
                .unwrap_or_else(|| serde_json::Number::from(ms / 1000))
        }
    }

    /// Converts request seconds (int or fraction) to milliseconds, rounding to the nearest ms.
    pub fn from_seconds(seconds: f64) -> Option<Timestamp> {
        let ms = (seconds * 1000.0).round();
        if ms.is_finite() && ms.abs() < 9.0e15 {
            Some(Timestamp::from_millis(ms as i64))
        } else {
            None
        }
    }
}

/// Fallback for unroutable requests (docs/wire.md#requests: 404 `UnknownOperationException`).
pub async fn unknown_operation() -> ApiError {
    ApiError::UnknownOperation
}

/// Handler for known KVS operations that openkvs does not implement yet.
pub fn not_supported(op: &'static str) -> ApiError {
    ApiError::InvalidArgument(format!(
        "The operation {op} is not supported by openkvs yet."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::Timestamp;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(
            epoch_seconds::from_seconds(1704067200.0),
            Some(Timestamp(1704067200000))
        );
        assert_eq!(
            epoch_seconds::from_seconds(1704067200.123),
            Some(Timestamp(1704067200123))
        );
        assert_eq!(
            epoch_seconds::to_json(Timestamp(1704067200123)).to_string(),
            "1704067200.123"
        );
        assert_eq!(
            epoch_seconds::to_json(Timestamp(1704067200000)).to_string(),
            "1704067200"
        );
        assert_eq!(epoch_seconds::from_seconds(f64::INFINITY), None);
    }
}
