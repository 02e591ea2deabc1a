//! Oracle test: what botocore (the AWS CLI's signer) signs must verify here, and our `sign` / `presign` must
//! produce the identical `Authorization` header / query string. Skipped with a notice without python3 + botocore.

use sigv4::{
    presign, sign, verify, Credentials, Mode, Request, SigningParams, DEFAULT_MAX_SKEW, SERVICE,
};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

fn botocore_cases() -> Option<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/botocore_oracle.py");
    let output = match Command::new("python3").arg(script).output() {
        Ok(output) => output,
        Err(error) => panic!("the botocore oracle needs python3: {error}"),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No module named 'botocore'") {
            panic!(
                "the botocore oracle needs botocore (scripts/test.sh installs requirements-test.txt)"
            );
        }
        panic!("botocore_oracle.py failed: {stderr}");
    }
    Some(serde_json::from_slice(&output.stdout).expect("oracle prints JSON"))
}

fn text(value: &serde_json::Value) -> &str {
    value.as_str().expect("string")
}

/// Names `sign` / `presign` add themselves.
fn is_auth_header(name: &str) -> bool {
    ["authorization", "x-amz-date", "x-amz-security-token"]
        .contains(&name.to_ascii_lowercase().as_str())
}

#[test]
fn botocore_signatures_verify_and_match_ours() {
    let Some(oracle) = botocore_cases() else {
        return;
    };
    let signed_at = UNIX_EPOCH + Duration::from_secs(oracle["time"].as_u64().expect("time"));
    let key_id = text(&oracle["access_key_id"]).to_owned();
    let secret = text(&oracle["secret"]).to_owned();
    let keys = vec![(key_id.clone(), secret.clone())];
    let cases = oracle["cases"].as_array().expect("cases");
    assert!(cases.len() >= 5);

    for case in cases {
        let name = text(&case["name"]);
        let headers: Vec<(String, String)> = case["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|pair| (text(&pair[0]).to_owned(), text(&pair[1]).to_owned()))
            .collect();
        let header_refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let payload_hash = text(&case["body_sha256"]);
        let request = Request {
            method: text(&case["method"]),
            path: text(&case["path"]),
            query: text(&case["query"]),
            headers: &header_refs,
        };

        // 1. botocore's signature verifies, a minute later, and fails with a tampered payload hash.
        let now = signed_at + Duration::from_secs(60);
        let verified = verify(
            &request,
            payload_hash,
            &keys,
            Mode::RequireKnownKey,
            now,
            DEFAULT_MAX_SKEW,
        )
        .unwrap_or_else(|error| panic!("{name}: botocore's signature must verify: {error}"));
        assert_eq!(verified.access_key_id, key_id, "{name}");
        assert_eq!(verified.region, "us-west-2", "{name}");
        assert_eq!(verified.signed_at, signed_at, "{name}");
        assert_eq!(
            verified.session_token.as_deref(),
            case["session_token"].as_str(),
            "{name}"
        );
        let tampered = sigv4::sha256_hex(b"tampered");
        assert!(
            verify(
                &request,
                &tampered,
                &keys,
                Mode::RequireKnownKey,
                now,
                DEFAULT_MAX_SKEW
            )
            .is_err(),
            "{name}"
        );

        // 2. We sign identically.
        let credentials = Credentials {
            access_key_id: key_id.clone(),
            secret_access_key: secret.clone(),
            session_token: case["session_token"].as_str().map(str::to_owned),
        };
        let params = SigningParams {
            credentials: &credentials,
            region: "us-west-2",
            service: SERVICE,
            time: signed_at,
        };
        match case["expires"].as_u64() {
            None => {
                let unsigned: Vec<(&str, &str)> = header_refs
                    .iter()
                    .copied()
                    .filter(|(n, _)| !is_auth_header(n))
                    .collect();
                let ours = sign(
                    &Request {
                        headers: &unsigned,
                        ..request
                    },
                    payload_hash,
                    &params,
                );
                let theirs = headers
                    .iter()
                    .find(|(n, _)| n == "Authorization")
                    .map(|(_, v)| v.as_str());
                let ours_authorization = ours
                    .iter()
                    .find(|(n, _)| n == "authorization")
                    .map(|(_, v)| v.as_str());
                assert_eq!(ours_authorization, theirs, "{name}: Authorization differs");
            }
            Some(expires) => {
                let original = Request {
                    query: text(&case["original_query"]),
                    ..request
                };
                let ours = presign(
                    &original,
                    payload_hash,
                    &params,
                    Duration::from_secs(expires),
                );
                assert_eq!(
                    ours,
                    text(&case["query"]),
                    "{name}: presigned query differs"
                );
                // Expired after X-Amz-Expires.
                let late = signed_at + Duration::from_secs(expires + 1);
                assert!(verify(
                    &request,
                    payload_hash,
                    &keys,
                    Mode::RequireKnownKey,
                    late,
                    DEFAULT_MAX_SKEW
                )
                .is_err());
            }
        }
    }
}

#[test]
fn oracle_time_formats_as_botocore_does() {
    assert_eq!(
        sigv4::format_amz_date(UNIX_EPOCH + Duration::from_secs(1_709_618_828)),
        "20240305T060708Z"
    );
}
