//! AWS Signature Version 4 (pure: no I/O): a signer for our clients and a constant-time verifier for the server.
//!
//! Canonicalisation follows botocore `auth.py` `SigV4Auth` (non-S3 services), which is what the AWS CLI, boto3 and
//! the KVS producer SDKs agree on (docs/wire.md#sigv4):
//! - path: RFC 3986 dot segments removed, empty segments collapsed, then every byte outside `A-Za-z0-9-_.~/`
//!   percent-encoded — applied to the path *as on the wire*, so an already-encoded `%20` becomes `%2520` (the
//!   "double encoding" that only S3 skips; botocore `_normalize_url_path`, garage `payload.rs`);
//! - query: each `key=value` decoded then re-encoded with the unreserved set, sorted by key then value;
//! - headers: names lower-cased, values trimmed with inner whitespace runs collapsed to one space, repeated
//!   headers joined with `,`.
//!
//! [`sign`] signs every header it is given except botocore's `SIGNED_HEADERS_BLACKLIST` ([`UNSIGNED_HEADERS`]:
//! hop-by-hop headers, `expect`, `user-agent`, `x-amzn-trace-id`), because proxies and HTTP stacks rewrite those.
//! [`verify`] checks exactly the headers the client listed in `SignedHeaders`, against their values as received
//! (the C producer SDK signs `Host: 127.0.0.1` without the port — docs/wire.md#sigv4).

mod amz_date;

use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

pub use amz_date::{format_amz_date, parse_amz_date};

/// The only algorithm SigV4 knows.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Signing name of all three KVS services (docs/wire.md#sigv4).
pub const SERVICE: &str = "kinesisvideo";
/// Last element of every credential scope.
pub const SCOPE_TERMINATOR: &str = "aws4_request";
/// SHA-256 of the empty string: what the C producer signs for the streaming PutMedia body (docs/wire.md#sigv4).
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Literal payload hash of the Java producer (`x-amz-content-sha256: UNSIGNED-PAYLOAD`).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Literal payload hash of the Android SDK.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// Headers [`sign`] leaves out: botocore's `SIGNED_HEADERS_BLACKLIST`, plus the ones `sign` itself adds.
pub const UNSIGNED_HEADERS: &[&str] = &[
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
    "authorization",
];
/// Longest `X-Amz-Expires` AWS accepts: seven days.
pub const MAX_PRESIGN_EXPIRES: Duration = Duration::from_secs(7 * 24 * 3600);
/// AWS's default clock-skew tolerance (CommonErrors `RequestExpired`: "more than 15 minutes").
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Everything but RFC 3986 unreserved characters gets percent-encoded in the canonical query.
const QUERY_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The canonical path additionally keeps `/`.
const PATH_ENCODE_SET: &AsciiSet = &QUERY_ENCODE_SET.remove(b'/');

type HmacSha256 = Hmac<Sha256>;

/// Lowercase hex SHA-256 of `data` (the payload hash of a fully buffered body).
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// An HTTP request as signed or received. Header names in any case; repeated names allowed.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, … (upper-cased when canonicalised).
    pub method: &'a str,
    /// The raw path as on the wire, e.g. `/putMedia` (still percent-encoded).
    pub path: &'a str,
    /// The raw query string without `?` (empty if none).
    pub query: &'a str,
    /// Headers as sent / received. Must include `host` (with HTTP/2, pass `:authority` as `host`).
    pub headers: &'a [(&'a str, &'a str)],
}

/// An access key pair, with the STS session token if any.
#[derive(Clone)]
pub struct Credentials {
    /// `AKIA…` / `ASIA…`.
    pub access_key_id: String,
    /// Never logged: `Debug` redacts it.
    pub secret_access_key: String,
    /// Sent as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What a signature is made with.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    /// Whose key signs.
    pub credentials: &'a Credentials,
    /// Any region name; it only enters the credential scope.
    pub region: &'a str,
    /// Signing name; [`SERVICE`] for KVS.
    pub service: &'a str,
    /// Becomes `X-Amz-Date` (whole seconds).
    pub time: SystemTime,
}

/// `kSigning` of the SigV4 key chain: `HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")`.
/// `date` is `YYYYMMDD`.
pub fn derive_signing_key(
    secret_access_key: &str,
    date: &str,
    region: &str,
    service: &str,
) -> [u8; 32] {
    let k_date = hmac_sha256(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, SCOPE_TERMINATOR.as_bytes())
}

/// Hex signature of `string_to_sign` with a key from [`derive_signing_key`].
pub fn signature_hex(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// RFC 3986 "remove dot segments" plus collapsing of empty segments (botocore `remove_dot_segments`), then the
/// byte-wise encoding of everything but unreserved characters and `/`.
pub fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in raw_path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = String::with_capacity(raw_path.len() + 1);
    if raw_path.starts_with('/') {
        normalized.push('/');
    }
    normalized.push_str(&segments.join("/"));
    if raw_path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    utf8_percent_encode(&normalized, PATH_ENCODE_SET).to_string()
}

/// The canonical query string, leaving out parameters named in `excluded_keys` (compared after decoding).
pub fn canonical_query(raw_query: &str, excluded_keys: &[&str]) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key: Vec<u8> = percent_decode_str(key).collect();
            if excluded_keys
                .iter()
                .any(|excluded| excluded.as_bytes() == key.as_slice())
            {
                return None;
            }
            let value: Vec<u8> = percent_decode_str(value).collect();
            Some((
                encode_bytes(&key, QUERY_ENCODE_SET),
                encode_bytes(&value, QUERY_ENCODE_SET),
            ))
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(raw_query.len());
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

fn encode_bytes(bytes: &[u8], set: &'static AsciiSet) -> String {
    percent_encoding::percent_encode(bytes, set).to_string()
}

fn encode_query_component(text: &str) -> String {
    utf8_percent_encode(text, QUERY_ENCODE_SET).to_string()
}

/// `Trimall`: trim, and collapse inner whitespace runs to one space (botocore `_header_value`).
fn canonical_header_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// All values of header `lowercase_name`, canonicalised and joined with `,` in arrival order.
fn joined_header_values(headers: &[(&str, &str)], lowercase_name: &str) -> Option<String> {
    let mut values = headers
        .iter()
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case(lowercase_name))
        .map(|(_, value)| canonical_header_value(value))
        .peekable();
    values.peek()?;
    Some(values.collect::<Vec<_>>().join(","))
}

/// The canonical request over `signed_headers` (lower-case, sorted, deduplicated by the caller).
/// A signed header that is absent canonicalises with an empty value, so the signature simply won't match.
pub fn canonical_request(
    request: &Request,
    signed_headers: &[String],
    payload_hash: &str,
    excluded_query_keys: &[&str],
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(&request.method.to_ascii_uppercase());
    out.push('\n');
    out.push_str(&canonical_uri(request.path));
    out.push('\n');
    out.push_str(&canonical_query(request.query, excluded_query_keys));
    out.push('\n');
    for name in signed_headers {
        out.push_str(name);
        out.push(':');
        out.push_str(&joined_header_values(request.headers, name).unwrap_or_default());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// `AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of the canonical request>`.
pub fn string_to_sign(amz_date: &str, credential_scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Lower-case, sorted, deduplicated names of the headers [`sign`] signs: all but [`UNSIGNED_HEADERS`].
fn headers_to_sign(headers: &[(&str, &str)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(name, _)| name.trim().to_ascii_lowercase())
        .filter(|name| !UNSIGNED_HEADERS.contains(&name.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Sign in the header form. Returns the headers to add: `x-amz-date`, `x-amz-security-token` (with a session
/// token) and `authorization`. Any `x-amz-date`, `x-amz-security-token` or `authorization` already in
/// `request.headers` is ignored (replaced); all other headers except [`UNSIGNED_HEADERS`] are signed, so pass
/// `host` and whatever else you send (`x-amzn-*`, `content-type`). `payload_hash` is what enters the canonical
/// request: a hex SHA-256 or a literal marker such as [`UNSIGNED_PAYLOAD`] (then also send it yourself as
/// `x-amz-content-sha256`, which gets signed like any header).
pub fn sign(
    request: &Request,
    payload_hash: &str,
    params: &SigningParams,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(params.time);
    let token = params.credentials.session_token.as_deref();
    let mut headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter(|(name, _)| {
            let name = name.trim();
            !name.eq_ignore_ascii_case("x-amz-date")
                && !name.eq_ignore_ascii_case("x-amz-security-token")
        })
        .copied()
        .collect();
    headers.push(("x-amz-date", &amz_date));
    if let Some(token) = token {
        headers.push(("x-amz-security-token", token));
    }
    let signed_headers = headers_to_sign(&headers);
    let with_our_headers = Request {
        headers: &headers,
        ..*request
    };
    let canonical = canonical_request(&with_our_headers, &signed_headers, payload_hash, &[]);
    let scope = format!(
        "{}/{}/{}/{SCOPE_TERMINATOR}",
        &amz_date[..8],
        params.region,
        params.service
    );
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let key = derive_signing_key(
        &params.credentials.secret_access_key,
        &amz_date[..8],
        params.region,
        params.service,
    );
    let signature = signature_hex(&key, &to_sign);

    let mut out = vec![("x-amz-date".to_owned(), amz_date.clone())];
    if let Some(token) = token {
        out.push(("x-amz-security-token".to_owned(), token.to_owned()));
    }
    out.push((
        "authorization".to_owned(),
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
            params.credentials.access_key_id,
            signed_headers.join(";")
        ),
    ));
    out
}

/// Sign in the query-string ("presigned URL") form, like botocore `SigV4QueryAuth` and aws-sdk-go `Presign`.
/// Returns the complete query string to send: `request.query` followed by `X-Amz-Algorithm`, `X-Amz-Credential`,
/// `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Security-Token` (with a session token) and
/// finally `X-Amz-Signature`. Headers are chosen as in [`sign`] (usually just `host`).
pub fn presign(
    request: &Request,
    payload_hash: &str,
    params: &SigningParams,
    expires: Duration,
) -> String {
    let amz_date = format_amz_date(params.time);
    let signed_headers = headers_to_sign(request.headers);
    let scope = format!(
        "{}/{}/{}/{SCOPE_TERMINATOR}",
        &amz_date[..8],
        params.region,
        params.service
    );
    let mut query = String::from(request.query);
    let mut append = |key: &str, value: &str| {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(key);
        query.push('=');
        query.push_str(&encode_query_component(value));
    };
    append("X-Amz-Algorithm", ALGORITHM);
    append(
        "X-Amz-Credential",
        &format!("{}/{scope}", params.credentials.access_key_id),
    );
    append("X-Amz-Date", &amz_date);
    append("X-Amz-Expires", &expires.as_secs().to_string());
    append("X-Amz-SignedHeaders", &signed_headers.join(";"));
    if let Some(token) = &params.credentials.session_token {
        append("X-Amz-Security-Token", token);
    }
    let with_auth_params = Request {
        query: &query,
        ..*request
    };
    let canonical = canonical_request(&with_auth_params, &signed_headers, payload_hash, &[]);
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let key = derive_signing_key(
        &params.credentials.secret_access_key,
        &amz_date[..8],
        params.region,
        params.service,
    );
    format!("{query}&X-Amz-Signature={}", signature_hex(&key, &to_sign))
}

/// Where the server finds secret keys.
pub trait SecretLookup {
    /// The secret access key of `access_key_id`, or `None` if the key is unknown.
    fn secret_for(&self, access_key_id: &str) -> Option<String>;
}

/// No keys at all (handy with [`Mode::AcceptAnyWellFormed`]).
impl SecretLookup for () {
    fn secret_for(&self, _access_key_id: &str) -> Option<String> {
        None
    }
}

/// A fixed list of `(access key id, secret)` pairs.
impl SecretLookup for Vec<(String, String)> {
    fn secret_for(&self, access_key_id: &str) -> Option<String> {
        self.iter()
            .find(|(id, _)| id == access_key_id)
            .map(|(_, secret)| secret.clone())
    }
}

/// How strict [`verify`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The access key must be known to the [`SecretLookup`] and the signature must match.
    RequireKnownKey,
    /// No credentials configured: any well-formed, in-date signature is accepted; the signature itself is not
    /// checked and the lookup is not consulted.
    AcceptAnyWellFormed,
}

/// A request that passed [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// From the credential scope.
    pub access_key_id: String,
    /// From the credential scope (not checked against anything).
    pub region: String,
    /// `X-Amz-Date`.
    pub signed_at: SystemTime,
    /// `x-amz-security-token` / `X-Amz-Security-Token`, if sent (signed, but not validated here).
    pub session_token: Option<String>,
}

/// Why a request is not authenticated. Each variant's doc names the AWS error it stands for; the
/// server maps the variants to its wire errors, exhaustively, in one place (docs/wire.md#errors).
/// The messages carried are AWS's own wording where AWS has one.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Neither an `Authorization` header nor `X-Amz-*` query parameters.
    /// AWS: `MissingAuthenticationTokenException`, 403, "Missing Authentication Token".
    #[error("request is not signed")]
    MissingAuthentication,
    /// The authorization is present but lacks a part (`Credential`, `SignedHeaders`, `Signature`, a date,
    /// a signed `host`) or uses another algorithm. AWS: `IncompleteSignatureException`, 400, the message.
    #[error("incomplete signature: {0}")]
    IncompleteSignature(String),
    /// A part is present but unparsable (bad date, bad credential, bad expiry, non-hex signature).
    /// AWS: `IncompleteSignatureException`, 400, the message.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The credential scope names another service, or its date differs from `X-Amz-Date`.
    /// AWS: `InvalidSignatureException`, 403, the message (AWS's own wording).
    #[error("invalid credential scope: {0}")]
    InvalidScope(String),
    /// The access key id is not known. AWS: `UnrecognizedClientException`, 403,
    /// "The security token included in the request is invalid.".
    #[error("unknown access key id {0}")]
    UnknownAccessKey(String),
    /// The signature does not match. The canonical request and string to sign are for the server log (they hold
    /// no secret); the client gets AWS's fixed text. AWS: `InvalidSignatureException`, 403, "The request signature
    /// we calculated does not match …".
    #[error("signature mismatch; canonical request:\n{canonical_request}\nstring to sign:\n{string_to_sign}")]
    SignatureMismatch {
        /// What the server signed.
        canonical_request: String,
        /// What the server signed, step two.
        string_to_sign: String,
    },
    /// Signed too long ago (beyond the skew limit) or past a presigned URL's `X-Amz-Expires`.
    /// AWS: `InvalidSignatureException`, 403, "Signature expired: … is now earlier than … (… - 15 min.)".
    #[error("{message}")]
    Expired {
        /// `X-Amz-Date`.
        signed_at: String,
        /// The server's clock.
        now: String,
        /// The AWS message.
        message: String,
    },
    /// Signed in the future beyond the skew limit. AWS: `InvalidSignatureException`, 403,
    /// "Signature not yet current: … is still later than … (… + 15 min.)".
    #[error("{message}")]
    NotYetValid {
        /// `X-Amz-Date`.
        signed_at: String,
        /// The server's clock.
        now: String,
        /// The AWS message.
        message: String,
    },
}

/// The parts of an authorization, from either form.
struct Authorization {
    access_key_id: String,
    scope_date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    /// Presigned URLs only.
    expires: Option<Duration>,
    session_token: Option<String>,
    is_presigned: bool,
}

/// Header form: `AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kinesisvideo/aws4_request,
/// SignedHeaders=host;x-amz-date, Signature=…`.
fn parse_authorization_header(request: &Request, header: &str) -> Result<Authorization, AuthError> {
    let header = header.trim();
    let (algorithm, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if algorithm != ALGORITHM {
        return Err(AuthError::IncompleteSignature(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'"
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let Some((key, value)) = part.split_once('=') else {
            return Err(AuthError::IncompleteSignature(format!(
                "'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{header}'."
            )));
        };
        match key.trim() {
            "Credential" => credential = Some(value.trim()),
            "SignedHeaders" => signed_headers = Some(value.trim()),
            "Signature" => signature = Some(value.trim()),
            _ => {}
        }
    }
    let mut missing = String::new();
    for (name, value) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed_headers),
    ] {
        if value.is_none() {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    let amz_date = joined_header_values(request.headers, "x-amz-date");
    if amz_date.is_none() {
        missing.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    let (Some(credential), Some(signed_headers), Some(signature), Some(amz_date)) =
        (credential, signed_headers, signature, amz_date)
    else {
        return Err(AuthError::IncompleteSignature(format!(
            "{missing}Authorization={header}"
        )));
    };
    let (access_key_id, scope_date, region, service) = parse_credential(credential)?;
    Ok(Authorization {
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers: parse_signed_headers(signed_headers),
        signature: signature.to_owned(),
        amz_date,
        expires: None,
        session_token: joined_header_values(request.headers, "x-amz-security-token"),
        is_presigned: false,
    })
}

/// Query form: `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`,
/// `X-Amz-Signature` (+ `X-Amz-Security-Token`).
fn parse_presigned_query(query: &str) -> Result<Authorization, AuthError> {
    let param = |wanted: &str| -> Option<String> {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode_str(key).decode_utf8_lossy() == wanted)
                .then(|| percent_decode_str(value).decode_utf8_lossy().into_owned())
        })
    };
    let mut missing = String::new();
    let mut required = |name: &str| {
        let value = param(name);
        if value.is_none() {
            missing.push_str(&format!(
                "AWS query-string parameters must include '{name}'. "
            ));
        }
        value
    };
    let algorithm = required("X-Amz-Algorithm");
    let credential = required("X-Amz-Credential");
    let signature = required("X-Amz-Signature");
    let signed_headers = required("X-Amz-SignedHeaders");
    let amz_date = required("X-Amz-Date");
    let expires = required("X-Amz-Expires");
    let (
        Some(algorithm),
        Some(credential),
        Some(signature),
        Some(signed_headers),
        Some(amz_date),
        Some(expires),
    ) = (
        algorithm,
        credential,
        signature,
        signed_headers,
        amz_date,
        expires,
    )
    else {
        return Err(AuthError::IncompleteSignature(format!(
            "{missing}Re-examine the query-string parameters."
        )));
    };
    if algorithm != ALGORITHM {
        return Err(AuthError::IncompleteSignature(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'"
        )));
    }
    let expires_seconds: u64 = expires.parse().map_err(|_| {
        AuthError::Malformed(format!("X-Amz-Expires should be a number, not '{expires}'"))
    })?;
    let expires = Duration::from_secs(expires_seconds);
    if expires > MAX_PRESIGN_EXPIRES {
        return Err(AuthError::Malformed(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800".to_owned(),
        ));
    }
    let (access_key_id, scope_date, region, service) = parse_credential(&credential)?;
    Ok(Authorization {
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers: parse_signed_headers(&signed_headers),
        signature,
        amz_date,
        expires: Some(expires),
        session_token: param("X-Amz-Security-Token"),
        is_presigned: true,
    })
}

/// `AKID/20150830/us-east-1/kinesisvideo/aws4_request` → (key id, date, region, service).
fn parse_credential(credential: &str) -> Result<(String, String, String, String), AuthError> {
    // The key id itself never holds '/', so split from the right would be no safer; split from the left.
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [key_id, date, region, service, terminator] if !key_id.is_empty() && !region.is_empty() => {
            if *terminator != SCOPE_TERMINATOR {
                return Err(AuthError::InvalidScope(format!(
                    "Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', not '{terminator}'."
                )));
            }
            if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AuthError::Malformed(format!("Credential date '{date}' is not YYYYMMDD.")));
            }
            Ok((key_id.to_string(), date.to_string(), region.to_string(), service.to_string()))
        }
        _ => Err(AuthError::IncompleteSignature(format!(
            "Credential should be a five-part value 'AKID/date/region/service/aws4_request', not '{credential}'."
        ))),
    }
}

fn parse_signed_headers(signed_headers: &str) -> Vec<String> {
    let mut names: Vec<String> = signed_headers
        .split(';')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn whole_minutes(duration: Duration) -> u64 {
    duration.as_secs() / 60
}

/// Verify a request signed for [`SERVICE`]; see [`verify_for_service`].
pub fn verify(
    request: &Request,
    payload_hash: &str,
    lookup: &dyn SecretLookup,
    mode: Mode,
    now: SystemTime,
    max_skew: Duration,
) -> Result<Verified, AuthError> {
    verify_for_service(request, payload_hash, lookup, mode, now, max_skew, SERVICE)
}

/// Verify the header form or the query form of SigV4.
///
/// `payload_hash` is what the server computed or decided (docs/wire.md#sigv4): the literal `x-amz-content-sha256`
/// header when present, else [`EMPTY_SHA256`] for a streaming `/putMedia`, else the SHA-256 of the body.
/// Checks, in order: form and completeness, credential scope (service, terminator, date = `X-Amz-Date`'s date),
/// clock skew (`|now - X-Amz-Date| <= max_skew`; for presigned URLs `now <= X-Amz-Date + X-Amz-Expires` and not
/// more than `max_skew` in the future), signed `host`, then — with [`Mode::RequireKnownKey`] — the access key
/// and the signature, compared in constant time. The `Date` header fallback of SigV4 is not supported: every
/// AWS SDK sends `X-Amz-Date`.
pub fn verify_for_service(
    request: &Request,
    payload_hash: &str,
    lookup: &dyn SecretLookup,
    mode: Mode,
    now: SystemTime,
    max_skew: Duration,
    service: &str,
) -> Result<Verified, AuthError> {
    let authorization_header = joined_header_values(request.headers, "authorization");
    let has_query_auth = request.query.split('&').any(|pair| {
        let key = pair.split_once('=').map_or(pair, |(key, _)| key);
        key == "X-Amz-Algorithm" || key == "X-Amz-Signature" || key == "X-Amz-Credential"
    });
    let auth = match (authorization_header, has_query_auth) {
        (Some(header), _) => parse_authorization_header(request, &header)?,
        (None, true) => parse_presigned_query(request.query)?,
        (None, false) => return Err(AuthError::MissingAuthentication),
    };

    if auth.service != service {
        return Err(AuthError::InvalidScope(format!(
            "Credential should be scoped to correct service: '{service}'. "
        )));
    }
    let signed_at = parse_amz_date(&auth.amz_date).ok_or_else(|| {
        AuthError::Malformed(format!(
            "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
            auth.amz_date
        ))
    })?;
    if !auth.amz_date.starts_with(&auth.scope_date) {
        return Err(AuthError::InvalidScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', \
             from '{}'.",
            auth.scope_date,
            &auth.amz_date[..8],
            auth.amz_date
        )));
    }
    check_time(&auth, signed_at, now, max_skew)?;
    if !auth.signed_headers.iter().any(|name| name == "host") {
        return Err(AuthError::IncompleteSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }
    let verified = Verified {
        access_key_id: auth.access_key_id.clone(),
        region: auth.region.clone(),
        signed_at,
        session_token: auth.session_token.clone(),
    };
    if mode == Mode::AcceptAnyWellFormed {
        return Ok(verified);
    }

    let secret = lookup
        .secret_for(&auth.access_key_id)
        .ok_or_else(|| AuthError::UnknownAccessKey(auth.access_key_id.clone()))?;
    let excluded: &[&str] = if auth.is_presigned {
        &["X-Amz-Signature"]
    } else {
        &[]
    };
    let canonical = canonical_request(request, &auth.signed_headers, payload_hash, excluded);
    let scope = format!(
        "{}/{}/{}/{SCOPE_TERMINATOR}",
        auth.scope_date, auth.region, auth.service
    );
    let to_sign = string_to_sign(&auth.amz_date, &scope, &canonical);
    let key = derive_signing_key(&secret, &auth.scope_date, &auth.region, &auth.service);
    let expected = hmac_sha256(&key, to_sign.as_bytes());
    // Compare bytes, not hex: a client may send upper-case hex. Wrong length or non-hex = mismatch.
    let provided = hex::decode(auth.signature.as_bytes()).unwrap_or_default();
    if provided.len() == expected.len() && bool::from(provided.ct_eq(&expected)) {
        Ok(verified)
    } else {
        Err(AuthError::SignatureMismatch {
            canonical_request: canonical,
            string_to_sign: to_sign,
        })
    }
}

fn check_time(
    auth: &Authorization,
    signed_at: SystemTime,
    now: SystemTime,
    max_skew: Duration,
) -> Result<(), AuthError> {
    let now_text = format_amz_date(now);
    if let Ok(ahead) = signed_at.duration_since(now) {
        if ahead > max_skew {
            let latest = format_amz_date(now + max_skew);
            return Err(AuthError::NotYetValid {
                message: format!(
                    "Signature not yet current: {} is still later than {latest} ({now_text} + {} min.)",
                    auth.amz_date,
                    whole_minutes(max_skew)
                ),
                signed_at: auth.amz_date.clone(),
                now: now_text,
            });
        }
    }
    let expired_message = match auth.expires {
        Some(expires) if now.duration_since(signed_at).is_ok_and(|age| age > expires) => {
            Some(format!(
                "Signature expired: {} is now earlier than {} ({now_text} - {} sec.)",
                auth.amz_date,
                format_amz_date(now.checked_sub(expires).unwrap_or(now)),
                expires.as_secs()
            ))
        }
        None if now
            .duration_since(signed_at)
            .is_ok_and(|age| age > max_skew) =>
        {
            Some(format!(
                "Signature expired: {} is now earlier than {} ({now_text} - {} min.)",
                auth.amz_date,
                format_amz_date(now.checked_sub(max_skew).unwrap_or(now)),
                whole_minutes(max_skew)
            ))
        }
        _ => None,
    };
    match expired_message {
        Some(message) => Err(AuthError::Expired {
            signed_at: auth.amz_date.clone(),
            now: now_text,
            message,
        }),
        None => Ok(()),
    }
}

/// A map from access key id to secret.
impl<S: std::hash::BuildHasher> SecretLookup for std::collections::HashMap<String, String, S> {
    fn secret_for(&self, access_key_id: &str) -> Option<String> {
        self.get(access_key_id).cloned()
    }
}

#[cfg(test)]
mod tests;
