//! The one place where a failure becomes an AWS error on the wire (docs/wire.md#errors).
//!
//! Every variant's error type, HTTP status and client message are decided by the three exhaustive
//! matches below, side by side, so a new variant does not compile until its wire form exists.
//! [`ApiError::render`] is the only function that builds an error response. Internal details
//! (store errors, I/O) are logged here and never sent to the client.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use crate::wire;

/// An error as a KVS client sees it. Variants carry the client-facing message; `Internal` carries
/// a detail that only goes to the log.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    // ---- Modeled KVS errors (docs/wire.md#errors) ----
    ResourceNotFound(String),
    InvalidArgument(String),
    ClientLimitExceeded(String),
    NotAuthorized(String),
    AccessDenied(String),
    ConnectionLimitExceeded(String),
    InvalidEndpoint(String),
    UnsupportedStreamMediaType(String),
    NoDataRetention(String),
    MissingCodecPrivateData(String),
    InvalidCodecPrivateData(String),
    InvalidMediaFrame(String),
    ResourceInUse(String),
    VersionMismatch(String),
    AccountStreamLimitExceeded(String),
    AccountChannelLimitExceeded(String),
    DeviceStreamLimitExceeded(String),
    InvalidDevice(String),
    InvalidResourceFormat(String),
    TagsPerResourceExceededLimit(String),
    StreamEdgeConfigurationNotFound(String),

    // ---- HLS session resources (docs/wire.md#hls-resources) ----
    /// A `SessionToken` refused on an HLS GET: HTTP 403 (what AWS answers, seen: "Streaming session
    /// token is expired"), type `NotAuthorizedException` (the model's shape for "not authorized";
    /// players read the status only). Messages (`hls::authorize`): expired → "Streaming session
    /// token is expired"; malformed, tampered or sealed with an unknown key → "Streaming session
    /// token is invalid" (one message, so the answer is no oracle); the stream was deleted (or
    /// deleted and recreated) since the session began → "The stream of this streaming session no
    /// longer exists". No media byte is served with any of them.
    InvalidSessionToken(String),

    // ---- Common / protocol errors ----
    /// No route for the path (docs/wire.md#requests).
    UnknownOperation,
    /// The body is not JSON, or a member has the wrong JSON type.
    Serialization(String),
    /// The body exceeds the configured limit for JSON operations.
    RequestTooLarge {
        limit: usize,
    },

    // ---- Auth layer (SigV4, docs/wire.md#sigv4); rendered with a lowercase `message` key ----
    MissingAuthenticationToken,
    IncompleteSignature(String),
    InvalidSignature(String),
    UnrecognizedClient,

    // ---- Ours ----
    /// Server failure; the detail goes to the log only.
    Internal(String),
    /// The server is shutting down and does not take new work.
    ServiceUnavailable,
    /// The archive cannot answer now but may later (a busy catalog, I/O that may pass, a backend
    /// out of reach): 503, which SDKs retry. The detail goes to the log only.
    StoreUnavailable(String),

    // ---- Below the routes (`conn`): connection refusals and requests hyper cannot parse ----
    /// A new connection over the per-address or total cap: 503 (clients retry it), then closed.
    TooManyConnections(String),
    /// The request line is longer than hyper accepts (a URI over 65534 bytes): 414.
    UriTooLong,
    /// The request head (request line and headers) is larger than hyper accepts: 431.
    HeadersTooLarge,
    /// The request is not valid HTTP/1.1 (request line or a header): 400.
    MalformedRequest,
}

impl ApiError {
    /// The `x-amzn-ErrorType` / `__type` value.
    pub fn aws_error_type(&self) -> &'static str {
        use ApiError::*;
        match self {
            ResourceNotFound(_) => "ResourceNotFoundException",
            InvalidArgument(_) => "InvalidArgumentException",
            ClientLimitExceeded(_) => "ClientLimitExceededException",
            NotAuthorized(_) | InvalidSessionToken(_) => "NotAuthorizedException",
            AccessDenied(_) => "AccessDeniedException",
            ConnectionLimitExceeded(_) => "ConnectionLimitExceededException",
            InvalidEndpoint(_) => "InvalidEndpointException",
            UnsupportedStreamMediaType(_) => "UnsupportedStreamMediaTypeException",
            NoDataRetention(_) => "NoDataRetentionException",
            MissingCodecPrivateData(_) => "MissingCodecPrivateDataException",
            InvalidCodecPrivateData(_) => "InvalidCodecPrivateDataException",
            InvalidMediaFrame(_) => "InvalidMediaFrameException",
            ResourceInUse(_) => "ResourceInUseException",
            VersionMismatch(_) => "VersionMismatchException",
            AccountStreamLimitExceeded(_) => "AccountStreamLimitExceededException",
            AccountChannelLimitExceeded(_) => "AccountChannelLimitExceededException",
            DeviceStreamLimitExceeded(_) => "DeviceStreamLimitExceededException",
            InvalidDevice(_) => "InvalidDeviceException",
            InvalidResourceFormat(_) => "InvalidResourceFormatException",
            TagsPerResourceExceededLimit(_) => "TagsPerResourceExceededLimitException",
            StreamEdgeConfigurationNotFound(_) => "StreamEdgeConfigurationNotFoundException",
            UnknownOperation => "UnknownOperationException",
            Serialization(_) => "SerializationException",
            RequestTooLarge { .. } => "RequestEntityTooLargeException",
            MissingAuthenticationToken => "MissingAuthenticationTokenException",
            IncompleteSignature(_) => "IncompleteSignatureException",
            InvalidSignature(_) => "InvalidSignatureException",
            UnrecognizedClient => "UnrecognizedClientException",
            Internal(_) => "InternalFailure",
            ServiceUnavailable | StoreUnavailable(_) | TooManyConnections(_) => {
                "ServiceUnavailableException"
            }
            // No KVS shape names these; InvalidArgumentException is the model's "bad request",
            // so SDKs raise a class they know, with the status telling what was wrong.
            UriTooLong | HeadersTooLarge | MalformedRequest => "InvalidArgumentException",
        }
    }

    /// HTTP status: the model's `httpStatusCode` for modeled shapes (docs/wire.md#errors).
    pub fn http_status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            ResourceNotFound(_) | StreamEdgeConfigurationNotFound(_) | UnknownOperation => {
                StatusCode::NOT_FOUND
            }
            NotAuthorized(_) | AccessDenied(_) => StatusCode::UNAUTHORIZED,
            InvalidArgument(_)
            | ClientLimitExceeded(_)
            | ConnectionLimitExceeded(_)
            | InvalidEndpoint(_)
            | UnsupportedStreamMediaType(_)
            | NoDataRetention(_)
            | MissingCodecPrivateData(_)
            | InvalidCodecPrivateData(_)
            | InvalidMediaFrame(_)
            | ResourceInUse(_)
            | VersionMismatch(_)
            | AccountStreamLimitExceeded(_)
            | AccountChannelLimitExceeded(_)
            | DeviceStreamLimitExceeded(_)
            | InvalidDevice(_)
            | InvalidResourceFormat(_)
            | TagsPerResourceExceededLimit(_)
            | Serialization(_)
            | IncompleteSignature(_)
            | MalformedRequest => StatusCode::BAD_REQUEST,
            UriTooLong => StatusCode::URI_TOO_LONG,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            MissingAuthenticationToken
            | InvalidSignature(_)
            | UnrecognizedClient
            | InvalidSessionToken(_) => StatusCode::FORBIDDEN,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceUnavailable | StoreUnavailable(_) | TooManyConnections(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The message the client sees. Never contains internal detail.
    pub fn message(&self) -> String {
        use ApiError::*;
        match self {
            ResourceNotFound(m)
            | InvalidArgument(m)
            | ClientLimitExceeded(m)
            | NotAuthorized(m)
            | AccessDenied(m)
            | ConnectionLimitExceeded(m)
            | InvalidEndpoint(m)
            | UnsupportedStreamMediaType(m)
            | NoDataRetention(m)
            | MissingCodecPrivateData(m)
            | InvalidCodecPrivateData(m)
            | InvalidMediaFrame(m)
            | ResourceInUse(m)
            | VersionMismatch(m)
            | AccountStreamLimitExceeded(m)
            | AccountChannelLimitExceeded(m)
            | DeviceStreamLimitExceeded(m)
            | InvalidDevice(m)
            | InvalidResourceFormat(m)
            | TagsPerResourceExceededLimit(m)
            | StreamEdgeConfigurationNotFound(m)
            | InvalidSessionToken(m)
            | Serialization(m)
            | IncompleteSignature(m)
            | InvalidSignature(m)
            | TooManyConnections(m) => m.clone(),
            UnknownOperation => "The requested operation is not recognized by openkvs.".into(),
            RequestTooLarge { limit } => {
                format!("The request body exceeds the limit of {limit} bytes.")
            }
            MissingAuthenticationToken => "Missing Authentication Token".into(),
            UnrecognizedClient => "The security token included in the request is invalid.".into(),
            Internal(_) => {
                "The server encountered an internal error. Please retry the request.".into()
            }
            ServiceUnavailable => "The service is shutting down. Please retry the request.".into(),
            StoreUnavailable(_) => {
                "The service is temporarily unavailable. Please retry the request.".into()
            }
            UriTooLong => "The request URI is too long (at most 65534 bytes).".into(),
            HeadersTooLarge => "The request headers are too large.".into(),
            MalformedRequest => "The request is not valid HTTP/1.1.".into(),
        }
    }

    /// Auth-layer errors use the lowercase `message` key, as AWS's front end does (docs/wire.md#errors).
    fn is_auth_layer(&self) -> bool {
        use ApiError::*;
        matches!(
            self,
            MissingAuthenticationToken
                | IncompleteSignature(_)
                | InvalidSignature(_)
                | UnrecognizedClient
        )
    }

    /// The only function that builds an error response (docs/wire.md#errors): status, `x-amzn-ErrorType`,
    /// request id headers and mirrors, `Content-Type: application/json`, body
    /// `{"__type": "<Type>", "Message": "…"}` (auth-layer errors: `"message"`).
    pub fn render(&self, request_id: &str) -> Response {
        let status = self.http_status();
        let error_type = self.aws_error_type();
        match self {
            ApiError::Internal(detail) => {
                tracing::error!(request_id, error_type, detail = %detail, "internal error")
            }
            ApiError::StoreUnavailable(detail) => {
                tracing::warn!(request_id, error_type, detail = %detail, "archive unavailable")
            }
            e if status.is_server_error() => {
                tracing::error!(request_id, error_type, "{}", e.message())
            }
            e => tracing::debug!(
                request_id,
                error_type,
                status = status.as_u16(),
                "{}",
                e.message()
            ),
        }
        let (headers, body) = self.wire_parts(request_id);
        let mut response = (status, body).into_response();
        response.headers_mut().extend(headers);
        response
    }

    /// The same answer as raw HTTP/1.1 bytes with `Connection: close`, for answers written below
    /// the HTTP stack (`conn`: refused connections, requests hyper could not parse). Not logged:
    /// the caller logs, rate-limited.
    pub fn render_http1(&self, request_id: &str) -> Vec<u8> {
        let status = self.http_status();
        let (headers, body) = self.wire_parts(request_id);
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .into_bytes();
        for (name, value) in &headers {
            // Spelt as AWS spells them, as hyper writes them for responses (`wire::aws_header_case`).
            let name = wire::AWS_HEADER_SPELLINGS
                .into_iter()
                .find(|s| s.eq_ignore_ascii_case(name.as_str()))
                .unwrap_or(name.as_str());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(
            format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(body.as_bytes());
        out
    }

    /// Headers and JSON body of the error (docs/wire.md#errors).
    fn wire_parts(&self, request_id: &str) -> (http::HeaderMap, String) {
        let error_type = self.aws_error_type();
        let message_key = if self.is_auth_layer() {
            "message"
        } else {
            "Message"
        };
        let mut body = serde_json::Map::new();
        body.insert("__type".into(), error_type.into());
        body.insert(message_key.into(), self.message().into());
        let body = serde_json::Value::Object(body).to_string();

        let mut headers = http::HeaderMap::with_capacity(5);
        let error_type_value = HeaderValue::from_static(error_type);
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(wire::X_AMZN_ERROR_TYPE, error_type_value.clone());
        headers.insert(wire::X_AMZ_ERROR_TYPE, error_type_value);
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert(wire::X_AMZN_REQUEST_ID, id.clone());
            headers.insert(wire::X_AMZ_REQUEST_ID, id);
        }
        (headers, body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render(&wire::current_request_id())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.aws_error_type(), self.message())
    }
}

impl std::error::Error for ApiError {}

/// The message AWS gives for a stream that does not exist (docs/wire.md#control-plane, seen on the wire).
pub const STREAM_NOT_FOUND: &str = "The requested stream is not found or not active.";

/// Every store error kind has one AWS form (docs/wire.md#errors). Exhaustive: a new
/// `StoreError` variant does not compile until it has one.
impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        use store::StoreError as S;
        match e {
            // Not found.
            S::StreamNotFound(_) => ApiError::ResourceNotFound(STREAM_NOT_FOUND.into()),
            S::FragmentNotFound { .. } => {
                ApiError::ResourceNotFound("The requested fragment is not found.".into())
            }
            // Already exists: what CreateStream of an existing name answers on AWS.
            S::AlreadyExists(name) => {
                ApiError::ResourceInUse(format!("The stream {name} already exists."))
            }
            // Conflict.
            S::VersionMismatch { .. } => ApiError::VersionMismatch(
                "The specified version of the stream does not match the current version.".into(),
            ),
            // The stream's state changed under the request (another writer won): the model's
            // "resource in use", 400, which SDKs do not retry blindly.
            S::Conflict { .. } => ApiError::ResourceInUse(
                "The stream was changed by another request. Please retry the request.".into(),
            ),
            // Another node took the stream's ingest over (docs/architecture.md#writer-lease):
            // this writer must stop; "in use", as for a stream another request holds.
            S::WriterLeaseLost { .. } => {
                ApiError::ResourceInUse("Another connection took over ingest to the stream.".into())
            }
            // The ingest owner numbers fragments: a refused number is a server fault, not the
            // client's (PutMedia reports store errors as acks; this is for completeness).
            e @ S::FragmentNumberNotIncreasing { .. } => ApiError::Internal(e.to_string()),
            // Unavailable: 503 ServiceUnavailableException, not 500 InternalFailure, so the client
            // learns that waiting helps; botocore retries 503 in both its legacy and standard
            // modes (as it does 500/502/504), the JS and Rust SDKs too (docs/wire.md#errors).
            e @ S::Unavailable { .. } => ApiError::StoreUnavailable(e.to_string()),
            // Corrupt and internal: 500 InternalFailure, the detail to the log only.
            e @ (S::Corrupt(_) | S::MediaIo { .. } | S::Config(_) | S::Task(_)) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn renders_service_error() {
        let r = ApiError::ResourceNotFound(STREAM_NOT_FOUND.into()).render("rid-1");
        assert_eq!(r.status(), 404);
        let h = r.headers();
        assert_eq!(h["x-amzn-ErrorType"], "ResourceNotFoundException");
        assert_eq!(h["x-amz-ErrorType"], "ResourceNotFoundException");
        assert_eq!(h["x-amzn-RequestId"], "rid-1");
        assert_eq!(h["x-amz-RequestId"], "rid-1");
        assert_eq!(h["content-type"], "application/json");
        let body = body_json(r).await;
        assert_eq!(
            body,
            serde_json::json!({"__type": "ResourceNotFoundException", "Message": STREAM_NOT_FOUND})
        );
    }

    #[tokio::test]
    async fn auth_errors_use_lowercase_message() {
        let r = ApiError::MissingAuthenticationToken.render("x");
        assert_eq!(r.status(), 403);
        let body = body_json(r).await;
        assert_eq!(body["message"], "Missing Authentication Token");
        assert!(body.get("Message").is_none());
    }

    #[tokio::test]
    async fn internal_detail_is_not_sent() {
        let r = ApiError::Internal("sqlite: disk I/O error at /secret/path".into()).render("x");
        assert_eq!(r.status(), 500);
        let body = body_json(r).await;
        assert_eq!(body["__type"], "InternalFailure");
        assert!(!body.to_string().contains("secret"));
    }

    #[test]
    fn renders_raw_http1() {
        let raw = ApiError::UriTooLong.render_http1("rid-2");
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("\r\nx-amzn-ErrorType: InvalidArgumentException\r\n"));
        assert!(head.contains("\r\nx-amzn-RequestId: rid-2\r\n"));
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        assert!(head.ends_with("\r\nconnection: close"));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["__type"], "InvalidArgumentException");
    }

    /// One AWS form per store error, whatever its detail: (status, type), detail never sent.
    #[test]
    fn store_errors_map() {
        use store::{FragmentNumber, StoreError as S, StreamId};
        let e: ApiError = S::AlreadyExists("cam1".into()).into();
        assert_eq!(
            e,
            ApiError::ResourceInUse("The stream cam1 already exists.".into())
        );
        let io = || std::io::Error::other("secret detail");
        let cases: Vec<(S, u16, &str)> = vec![
            (
                S::StreamNotFound(StreamId(3)),
                404,
                "ResourceNotFoundException",
            ),
            (
                S::FragmentNotFound {
                    stream: StreamId(3),
                    number: FragmentNumber(1),
                },
                404,
                "ResourceNotFoundException",
            ),
            (
                S::AlreadyExists("cam1".into()),
                400,
                "ResourceInUseException",
            ),
            (
                S::VersionMismatch {
                    stream: StreamId(3),
                    expected: "secret detail".into(),
                    found: "b".into(),
                },
                400,
                "VersionMismatchException",
            ),
            (
                S::Conflict {
                    what: "secret detail".into(),
                    source: io().into(),
                },
                400,
                "ResourceInUseException",
            ),
            (
                S::FragmentNumberNotIncreasing {
                    stream: StreamId(3),
                    number: FragmentNumber(1),
                },
                500,
                "InternalFailure",
            ),
            (
                S::unavailable("catalog", io()),
                503,
                "ServiceUnavailableException",
            ),
            (S::Corrupt("secret detail".into()), 500, "InternalFailure"),
            (
                S::MediaIo {
                    stream: StreamId(3),
                    segment: 1,
                    offset: 0,
                    len: 10,
                    source: io(),
                },
                500,
                "InternalFailure",
            ),
            (S::Task("secret detail".into()), 500, "InternalFailure"),
        ];
        for (store_error, status, error_type) in cases {
            let shown = store_error.to_string();
            let e = ApiError::from(store_error);
            assert_eq!(e.http_status(), status, "{shown}");
            assert_eq!(e.aws_error_type(), error_type, "{shown}");
            assert!(!e.message().contains("secret"), "{shown}: {}", e.message());
        }
    }
}
