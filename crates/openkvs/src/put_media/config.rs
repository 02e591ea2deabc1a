//! Where `put-media` sends, as whom, and for which region — resolved like the AWS CLI does, from arguments,
//! environment and `~/.aws/credentials`. Pure: the environment and file contents are passed in.

use crate::client::config::{non_empty, Ini};
use sigv4::Credentials;

/// The server's default listen address (`openkvs serve`).
pub const DEFAULT_ENDPOINT_URL: &str = "http://127.0.0.1:4567";
/// Used when no credentials are found: accepted by a server with no credentials configured.
pub const PLACEHOLDER_KEY: &str = "openkvs";
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_PROFILE: &str = "default";

/// `--endpoint-url`, else `OPENKVS_ENDPOINT_URL`, else `AWS_ENDPOINT_URL`, else [`DEFAULT_ENDPOINT_URL`].
pub fn endpoint_url(argument: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> String {
    argument
        .map(str::to_owned)
        .or_else(|| non_empty(env("OPENKVS_ENDPOINT_URL")))
        .or_else(|| non_empty(env("AWS_ENDPOINT_URL")))
        .unwrap_or_else(|| DEFAULT_ENDPOINT_URL.to_owned())
}

/// `--region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else [`DEFAULT_REGION`].
pub fn region(argument: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> String {
    argument
        .map(str::to_owned)
        .or_else(|| non_empty(env("AWS_REGION")))
        .or_else(|| non_empty(env("AWS_DEFAULT_REGION")))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned())
}

/// `--profile`, else `AWS_PROFILE`, else `default`.
pub fn profile(argument: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> String {
    argument
        .map(str::to_owned)
        .or_else(|| non_empty(env("AWS_PROFILE")))
        .unwrap_or_else(|| DEFAULT_PROFILE.to_owned())
}

/// Where the credentials came from (reported on stderr so a wrong key is easy to spot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Environment,
    Profile(String),
    Placeholder,
}

/// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else the profile's keys in the
/// credentials file, else the placeholder pair `openkvs`/`openkvs`.
pub fn credentials(
    env: &dyn Fn(&str) -> Option<String>,
    profile: &str,
    credentials_file_text: Option<&str>,
) -> (Credentials, CredentialSource) {
    if let (Some(access_key_id), Some(secret_access_key)) = (
        non_empty(env("AWS_ACCESS_KEY_ID")),
        non_empty(env("AWS_SECRET_ACCESS_KEY")),
    ) {
        let session_token = non_empty(env("AWS_SESSION_TOKEN"));
        return (
            Credentials {
                access_key_id,
                secret_access_key,
                session_token,
            },
            CredentialSource::Environment,
        );
    }
    if let Some(text) = credentials_file_text {
        let ini = Ini::parse(text);
        let value = |key: &str| ini.get(profile, key);
        if let (Some(access_key_id), Some(secret_access_key)) =
            (value("aws_access_key_id"), value("aws_secret_access_key"))
        {
            let session_token = value("aws_session_token");
            return (
                Credentials {
                    access_key_id,
                    secret_access_key,
                    session_token,
                },
                CredentialSource::Profile(profile.to_owned()),
            );
        }
    }
    let placeholder = Credentials {
        access_key_id: PLACEHOLDER_KEY.to_owned(),
        secret_access_key: PLACEHOLDER_KEY.to_owned(),
        session_token: None,
    };
    (placeholder, CredentialSource::Placeholder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn endpoint_precedence() {
        let env = env_of(&[
            ("OPENKVS_ENDPOINT_URL", "http://a:1"),
            ("AWS_ENDPOINT_URL", "http://b:2"),
        ]);
        assert_eq!(endpoint_url(Some("http://c:3"), &env), "http://c:3");
        assert_eq!(endpoint_url(None, &env), "http://a:1");
        assert_eq!(
            endpoint_url(None, &env_of(&[("AWS_ENDPOINT_URL", "http://b:2")])),
            "http://b:2"
        );
        assert_eq!(endpoint_url(None, &env_of(&[])), DEFAULT_ENDPOINT_URL);
    }

    #[test]
    fn region_and_profile_precedence() {
        let env = env_of(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_PROFILE", "cam"),
        ]);
        assert_eq!(region(Some("us-west-2"), &env), "us-west-2");
        assert_eq!(region(None, &env), "eu-west-1");
        assert_eq!(
            region(None, &env_of(&[("AWS_DEFAULT_REGION", "ap-south-1")])),
            "ap-south-1"
        );
        assert_eq!(region(None, &env_of(&[])), "us-east-1");
        assert_eq!(profile(None, &env), "cam");
        assert_eq!(profile(Some("x"), &env), "x");
        assert_eq!(profile(None, &env_of(&[])), "default");
    }

    const FILE: &str = "\
# comment
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = secret/default

[cam]
AWS_ACCESS_KEY_ID=AKIACAM
aws_secret_access_key=  secret-cam  
aws_session_token = tok
[broken]
aws_access_key_id = AKIAONLY
";

    #[test]
    fn credentials_precedence() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
        ]);
        let (found, source) = credentials(&env, "default", Some(FILE));
        assert_eq!(
            (found.access_key_id.as_str(), found.session_token.as_deref()),
            ("AKIAENV", Some("t"))
        );
        assert_eq!(source, CredentialSource::Environment);

        let (found, source) = credentials(&env_of(&[]), "default", Some(FILE));
        assert_eq!(
            (
                found.access_key_id.as_str(),
                found.secret_access_key.as_str()
            ),
            ("AKIADEFAULT", "secret/default")
        );
        assert_eq!(found.session_token, None);
        assert_eq!(source, CredentialSource::Profile("default".into()));

        let (found, _) = credentials(&env_of(&[]), "cam", Some(FILE));
        assert_eq!(
            (
                found.access_key_id.as_str(),
                found.secret_access_key.as_str(),
                found.session_token.as_deref()
            ),
            ("AKIACAM", "secret-cam", Some("tok"))
        );

        for (profile, text) in [
            ("broken", Some(FILE)),
            ("missing", Some(FILE)),
            ("default", None),
        ] {
            let (found, source) = credentials(&env_of(&[]), profile, text);
            assert_eq!(
                (
                    found.access_key_id.as_str(),
                    found.secret_access_key.as_str()
                ),
                ("openkvs", "openkvs")
            );
            assert_eq!(source, CredentialSource::Placeholder);
        }
    }
}
