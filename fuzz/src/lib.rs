//! Helpers shared by the fuzz targets in `fuzz_targets/`: the fixed key and clock of the SigV4 targets and the
//! checks both make.

use libfuzzer_sys::arbitrary;
use sigv4::{Credentials, Mode, Request, SigningParams};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The one access key the verifier knows in the raw half of the SigV4 targets.
pub const KEY_ID: &str = "AKIDEXAMPLE";
/// Its secret.
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// Seconds from the epoch to 10000-01-01T00:00:00Z: `X-Amz-Date` has four year digits.
pub const END_OF_YEAR_9999_S: u64 = 253_402_300_800;

/// `seconds` (reduced below year 10000) after the epoch.
pub fn time_at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds % END_OF_YEAR_9999_S)
}

/// Verifies `request` in both modes at `now_s` with a skew limit of `max_skew_s`: neither may panic, a refusal
/// must map to an AWS error, and a request that passes with the known key must also pass when any well-formed
/// signature is accepted, with the same result.
pub fn verify_both(request: &Request, payload_hash: &str, now_s: u64, max_skew_s: u32) {
    let lookup = vec![(KEY_ID.to_owned(), SECRET.to_owned())];
    let (now, max_skew) = (time_at(now_s), Duration::from_secs(max_skew_s.into()));
    let strict = sigv4::verify(
        request,
        payload_hash,
        &lookup,
        Mode::RequireKnownKey,
        now,
        max_skew,
    );
    let lax = sigv4::verify(
        request,
        payload_hash,
        &(),
        Mode::AcceptAnyWellFormed,
        now,
        max_skew,
    );
    if let Ok(verified) = &strict {
        assert_eq!(
            lax.as_ref().ok(),
            Some(verified),
            "known key passed, any-key did not"
        );
    }
    for error in [strict.err(), lax.err()].into_iter().flatten() {
        let _ = server::auth::redact_tokens(&error.to_string());
        let api_error = server::ApiError::from(error);
        let _ = (
            api_error.aws_error_type(),
            api_error.http_status(),
            api_error.message(),
        );
    }
}

/// `text` with only the characters `keep` accepts, or `fallback` when nothing is left.
pub fn only(text: &str, keep: fn(char) -> bool, fallback: &str) -> String {
    let kept: String = text.chars().filter(|&c| keep(c)).collect();
    if kept.is_empty() {
        fallback.to_owned()
    } else {
        kept
    }
}

/// Who signs in the round-trip half of the SigV4 targets: any secret, session token and time; a key id and
/// region of the characters AWS uses (the verifier splits the credential scope on `/`, `,` and spaces).
#[derive(arbitrary::Arbitrary, Debug)]
pub struct Signer {
    access_key_id: String,
    region: String,
    secret: String,
    session_token: Option<String>,
    signed_at_s: u64,
}

impl Signer {
    /// The credentials, the region and the signing time.
    pub fn parts(&self) -> (Credentials, String, SystemTime) {
        let credentials = Credentials {
            access_key_id: only(
                &self.access_key_id,
                |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
                "AKID",
            ),
            secret_access_key: self.secret.clone(),
            session_token: self.session_token.clone(),
        };
        let region = only(
            &self.region,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            "us-east-1",
        );
        (credentials, region, time_at(self.signed_at_s))
    }

    /// `f` with this signer's signing parameters (service `kinesisvideo`).
    pub fn with_params<T>(&self, f: impl FnOnce(&SigningParams) -> T) -> T {
        let (credentials, region, time) = self.parts();
        f(&SigningParams {
            credentials: &credentials,
            region: &region,
            service: sigv4::SERVICE,
            time,
        })
    }

    /// Verifies with this signer's key known at `now` (default skew) and checks that `verify` reports the
    /// signer's key id, region, time and `session_token` (as the verifier sees it).
    pub fn assert_verifies(
        &self,
        request: &Request,
        payload_hash: &str,
        now: SystemTime,
        session_token: Option<&str>,
    ) {
        let (credentials, region, signed_at) = self.parts();
        let lookup = vec![(
            credentials.access_key_id.clone(),
            credentials.secret_access_key,
        )];
        let verified = match sigv4::verify(
            request,
            payload_hash,
            &lookup,
            Mode::RequireKnownKey,
            now,
            sigv4::DEFAULT_MAX_SKEW,
        ) {
            Ok(verified) => verified,
            Err(error) => panic!("a request signed by sigv4 does not verify: {error}"),
        };
        assert_eq!(verified.access_key_id, credentials.access_key_id);
        assert_eq!(verified.region, region);
        assert_eq!(verified.signed_at, signed_at);
        assert_eq!(verified.session_token.as_deref(), session_token);
    }
}
