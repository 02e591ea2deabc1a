//! SigV4 verification as one middleware in front of every signed operation (docs/wire.md#sigv4), so
//! handlers never see an unauthenticated request.
//!
//! Payload hash rule: the literal `x-amz-content-sha256` when present (and for non-streaming
//! operations, if it is a hex hash, it must equal the body's hash); else SHA-256("") for streaming
//! operations (`/putMedia`, whose body is never read here); else SHA-256 of the body. JSON
//! operations have their body read here (within the limit) and handed on as a buffered body.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::wire::{read_body, BodyLimit};
use crate::AppState;

/// Operations whose body is a stream: signed with the empty-body hash (or a literal header value)
/// and never buffered by the auth layer.
pub const STREAMING_PATHS: &[&str] = &["/putMedia"];

/// Who signed the request (for handlers that care, e.g. logging).
#[derive(Clone, Debug)]
pub struct Principal {
    pub access_key_id: String,
}

impl From<sigv4::AuthError> for ApiError {
    fn from(e: sigv4::AuthError) -> Self {
        use sigv4::AuthError as A;
        // The server-side detail is for the log only, with session tokens redacted.
        match &e {
            A::SignatureMismatch {
                canonical_request,
                string_to_sign,
            } => tracing::info!(
                canonical_request = %redact_tokens(canonical_request),
                string_to_sign = %string_to_sign,
                "signature mismatch"
            ),
            other => {
                tracing::info!(error = %redact_tokens(&other.to_string()), "authentication failed")
            }
        }
        match e {
            A::MissingAuthentication => ApiError::MissingAuthenticationToken,
            A::IncompleteSignature(m) | A::Malformed(m) => ApiError::IncompleteSignature(m),
            A::UnknownAccessKey(_) => ApiError::UnrecognizedClient,
            A::InvalidScope(m) => ApiError::InvalidSignature(m),
            A::Expired { message, .. } | A::NotYetValid { message, .. } => {
                ApiError::InvalidSignature(message)
            }
            A::SignatureMismatch { .. } => ApiError::InvalidSignature(SIGNATURE_MISMATCH.into()),
        }
    }
}

/// AWS's text for a signature that does not match (the server's canonical request goes to the log).
pub const SIGNATURE_MISMATCH: &str =
    "The request signature we calculated does not match the signature \
     you provided. Check your AWS Secret Access Key and signing method. Consult the service \
     documentation for details.";

/// Removes session-token values (header line or presigned query parameter) from text bound for a log.
pub fn redact_tokens(text: &str) -> String {
    static QUERY_TOKEN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)(x-amz-security-token=)[^&\s]*").expect("regex compiles")
    });
    static HEADER_TOKEN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?im)^(x-amz-security-token:).*$").expect("regex compiles")
    });
    let text = QUERY_TOKEN.replace_all(text, "${1}<redacted>");
    HEADER_TOKEN
        .replace_all(&text, "${1}<redacted>")
        .into_owned()
}

/// Which payload hash the signature covers, and whether the body must be checked against it.
#[derive(Debug, PartialEq, Eq)]
pub enum PayloadHash {
    /// Use this value; the body is not hashed (streaming ops, `UNSIGNED-PAYLOAD`, …).
    Literal(String),
    /// The client declared this hex hash: the body's hash must equal it.
    Declared(String),
    /// Hash the body.
    OfBody,
}

/// The payload hash rule of docs/wire.md#sigv4.
pub fn payload_hash_rule(content_sha256: Option<&str>, streaming: bool) -> PayloadHash {
    match content_sha256 {
        Some(v) if !streaming && v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
            PayloadHash::Declared(v.to_ascii_lowercase())
        }
        Some(v) => PayloadHash::Literal(v.to_owned()),
        None if streaming => PayloadHash::Literal(sigv4::EMPTY_SHA256.to_owned()),
        None => PayloadHash::OfBody,
    }
}

/// The middleware. Mount with `route_layer` on the signed routes.
pub async fn verify_layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match authenticate(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

async fn authenticate(state: &AppState, request: Request) -> Result<Request, ApiError> {
    let (mut parts, body) = request.into_parts();
    let streaming = STREAMING_PATHS.contains(&parts.uri.path());
    let content_sha256 = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok());
    let rule = payload_hash_rule(content_sha256, streaming);

    let limit = state.config.json_body_limit;
    let (body, payload_hash) = match rule {
        PayloadHash::Literal(hash) => (body, hash),
        PayloadHash::OfBody | PayloadHash::Declared(_) => {
            let bytes = read_body(body, limit).await?;
            let actual = sigv4::sha256_hex(&bytes);
            if let PayloadHash::Declared(declared) = &rule {
                if *declared != actual {
                    return Err(ApiError::InvalidSignature(
                        "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
                    ));
                }
            }
            (Body::from(bytes), actual)
        }
    };

    let mut headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v)))
        .collect();
    // HTTP/2 carries the host as `:authority`, which SigV4 signs as `host`.
    if !parts.headers.contains_key(http::header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            headers.push(("host", authority.as_str()));
        }
    }
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let method = parts.method.as_str();
    let sig_request = sigv4::Request {
        method,
        path,
        query,
        headers: &headers,
    };
    let mode = if state.config.credentials.is_empty() {
        sigv4::Mode::AcceptAnyWellFormed
    } else {
        sigv4::Mode::RequireKnownKey
    };
    let verified = sigv4::verify(
        &sig_request,
        &payload_hash,
        &state.config.credentials,
        mode,
        state.clock.now(),
        state.config.max_clock_skew,
    )?;
    drop(headers);
    tracing::debug!(access_key_id = %verified.access_key_id, "authenticated");
    parts.extensions.insert(Principal {
        access_key_id: verified.access_key_id,
    });
    parts.extensions.insert(BodyLimit(limit));
    Ok(Request::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `sigv4::AuthError` becomes its AWS error here and nowhere else (the match above is
    /// exhaustive, so a new variant cannot fall through to a guess).
    #[test]
    fn auth_errors_map_to_aws_errors() {
        use sigv4::AuthError as A;
        let expired = || A::Expired {
            signed_at: "20240101T000000Z".into(),
            now: "20240101T001600Z".into(),
            message: "Signature expired: ...".into(),
        };
        let cases: Vec<(A, &str, u16, &str)> = vec![
            (
                A::MissingAuthentication,
                "MissingAuthenticationTokenException",
                403,
                "Missing Authentication Token",
            ),
            (
                A::IncompleteSignature("needs Signature".into()),
                "IncompleteSignatureException",
                400,
                "needs Signature",
            ),
            (
                A::Malformed("bad date".into()),
                "IncompleteSignatureException",
                400,
                "bad date",
            ),
            (
                A::InvalidScope("Credential should be scoped".into()),
                "InvalidSignatureException",
                403,
                "Credential should be scoped",
            ),
            (
                A::UnknownAccessKey("AKID".into()),
                "UnrecognizedClientException",
                403,
                "The security token included in the request is invalid.",
            ),
            (
                A::SignatureMismatch {
                    canonical_request: "c".into(),
                    string_to_sign: "s".into(),
                },
                "InvalidSignatureException",
                403,
                SIGNATURE_MISMATCH,
            ),
            (
                expired(),
                "InvalidSignatureException",
                403,
                "Signature expired: ...",
            ),
        ];
        for (error, kind, status, message) in cases {
            let e = ApiError::from(error);
            assert_eq!(
                (e.aws_error_type(), e.http_status().as_u16(), e.message()),
                (kind, status, message.to_owned())
            );
        }
    }

    #[test]
    fn tokens_are_redacted() {
        let text = "POST\n/x\nX-Amz-Date=1&X-Amz-Security-Token=SECRET%2F&b=2\nhost:h\nx-amz-security-token:SECRET\n";
        let out = redact_tokens(text);
        assert!(!out.contains("SECRET"), "{out}");
        assert!(out.contains("X-Amz-Security-Token=<redacted>&b=2"), "{out}");
        assert!(out.contains("x-amz-security-token:<redacted>\n"), "{out}");
    }

    #[test]
    fn payload_hash_rule_follows_the_contract() {
        let hex = "a".repeat(64);
        assert_eq!(payload_hash_rule(None, false), PayloadHash::OfBody);
        assert_eq!(
            payload_hash_rule(None, true),
            PayloadHash::Literal(sigv4::EMPTY_SHA256.into())
        );
        assert_eq!(
            payload_hash_rule(Some("UNSIGNED-PAYLOAD"), true),
            PayloadHash::Literal("UNSIGNED-PAYLOAD".into())
        );
        assert_eq!(
            payload_hash_rule(Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"), true),
            PayloadHash::Literal("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into())
        );
        assert_eq!(
            payload_hash_rule(Some(&hex), false),
            PayloadHash::Declared(hex.clone())
        );
        // Streaming ops never hash their body, even when a hex hash is declared.
        assert_eq!(
            payload_hash_rule(Some(&hex), true),
            PayloadHash::Literal(hex.clone())
        );
        assert_eq!(
            payload_hash_rule(Some("UNSIGNED-PAYLOAD"), false),
            PayloadHash::Literal("UNSIGNED-PAYLOAD".into())
        );
    }
}
