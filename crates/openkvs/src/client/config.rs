//! Credentials and configuration found the way botocore finds them: command line, environment, the shared
//! credentials file (`[name]` sections) and the config file (`[default]`, `[profile name]`). Pure: the
//! environment and file texts are passed in.

use sigv4::Credentials;

/// Where settings come from.
pub(crate) struct Sources<'a> {
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
    /// Text of the shared credentials file, if readable.
    pub(crate) credentials_file: Option<String>,
    /// Text of the config file, if readable.
    pub(crate) config_file: Option<String>,
}

/// A configuration problem (AWS CLI v2 exit status 253).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError(pub(crate) String);

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
pub(crate) fn credentials_path(env: &dyn Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    aws_file(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials")
}

/// `AWS_CONFIG_FILE`, else `~/.aws/config`.
pub(crate) fn config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    aws_file(env, "AWS_CONFIG_FILE", "config")
}

fn aws_file(
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
    name: &str,
) -> Option<std::path::PathBuf> {
    if let Some(path) = non_empty(env(var)) {
        let path = match (path.strip_prefix("~/"), non_empty(env("HOME"))) {
            (Some(rest), Some(home)) => format!("{home}/{rest}"),
            _ => path,
        };
        return Some(path.into());
    }
    let home = non_empty(env("HOME")).or_else(|| non_empty(env("USERPROFILE")))?;
    Some(std::path::Path::new(&home).join(".aws").join(name))
}

/// The sections of an INI text: name → ordered key/value pairs (keys lower-cased; `#`/`;` comments).
fn ini_sections(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            sections.push((name.trim().to_owned(), Vec::new()));
            continue;
        }
        if let (Some((key, value)), Some(section)) = (trimmed.split_once('='), sections.last_mut())
        {
            // Nested (indented) sub-settings such as `s3 =` blocks are kept flat; openkvs reads none of them.
            section
                .1
                .push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    sections
}

fn section_value(text: Option<&str>, section: &str, key: &str) -> Option<String> {
    let sections = ini_sections(text?);
    let (_, pairs) = sections.iter().find(|(name, _)| name == section)?;
    non_empty(pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
}

fn has_section(text: Option<&str>, section: &str) -> bool {
    text.is_some_and(|t| ini_sections(t).iter().any(|(name, _)| name == section))
}

/// Resolved settings for one invocation.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) profile: String,
    /// Whether `--profile` was given (then environment credentials are not used, as in botocore).
    pub(crate) explicit_profile: bool,
}

impl Sources<'_> {
    /// `--profile`, else `AWS_PROFILE` / `AWS_DEFAULT_PROFILE`, else `default`. A named profile that exists in
    /// neither file is an error.
    pub(crate) fn profile(&self, argument: Option<&str>) -> Result<Resolved, ConfigError> {
        let from_env = non_empty((self.env)("AWS_PROFILE"))
            .or_else(|| non_empty((self.env)("AWS_DEFAULT_PROFILE")));
        let profile = argument
            .map(str::to_owned)
            .or(from_env)
            .unwrap_or_else(|| "default".to_owned());
        if profile != "default"
            && !has_section(self.credentials_file.as_deref(), &profile)
            && !has_section(self.config_file.as_deref(), &format!("profile {profile}"))
        {
            return Err(ConfigError(format!(
                "The config profile ({profile}) could not be found"
            )));
        }
        Ok(Resolved {
            profile,
            explicit_profile: argument.is_some(),
        })
    }

    /// A setting of the profile in the config file (`[default]` or `[profile name]`).
    pub(crate) fn config_value(&self, profile: &str, key: &str) -> Option<String> {
        let section = if profile == "default" {
            "default".to_owned()
        } else {
            format!("profile {profile}")
        };
        section_value(self.config_file.as_deref(), &section, key)
    }

    /// `--region`, else `AWS_REGION`, `AWS_DEFAULT_REGION`, else the profile's `region`.
    pub(crate) fn region(&self, argument: Option<&str>, profile: &str) -> Option<String> {
        argument
            .map(str::to_owned)
            .or_else(|| non_empty((self.env)("AWS_REGION")))
            .or_else(|| non_empty((self.env)("AWS_DEFAULT_REGION")))
            .or_else(|| self.config_value(profile, "region"))
    }

    /// botocore's chain, without the network providers: environment (unless `--profile`), the credentials file,
    /// the config file. `None` = "Unable to locate credentials".
    pub(crate) fn credentials(&self, resolved: &Resolved) -> Option<(Credentials, &'static str)> {
        if !resolved.explicit_profile {
            if let (Some(access_key_id), Some(secret_access_key)) = (
                non_empty((self.env)("AWS_ACCESS_KEY_ID")),
                non_empty((self.env)("AWS_SECRET_ACCESS_KEY")),
            ) {
                let session_token = non_empty((self.env)("AWS_SESSION_TOKEN"));
                return Some((
                    Credentials {
                        access_key_id,
                        secret_access_key,
                        session_token,
                    },
                    "env",
                ));
            }
        }
        let from = |text: Option<&str>, section: &str| {
            let value = |key: &str| section_value(text, section, key);
            match (value("aws_access_key_id"), value("aws_secret_access_key")) {
                (Some(access_key_id), Some(secret_access_key)) => Some(Credentials {
                    access_key_id,
                    secret_access_key,
                    session_token: value("aws_session_token")
                        .or_else(|| value("aws_security_token")),
                }),
                _ => None,
            }
        };
        let profile = &resolved.profile;
        if let Some(c) = from(self.credentials_file.as_deref(), profile) {
            return Some((c, "shared-credentials-file"));
        }
        let section = if profile == "default" {
            "default".to_owned()
        } else {
            format!("profile {profile}")
        };
        from(self.config_file.as_deref(), &section).map(|c| (c, "config-file"))
    }
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

    const CREDS: &str = "[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = sdef\n[cam]\naws_access_key_id=AKIACAM\naws_secret_access_key=scam\naws_session_token=tok\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\noutput = table\n[profile cam]\nregion = ap-south-1\n[profile cfgonly]\naws_access_key_id = AKIACFG\naws_secret_access_key = scfg\n";

    #[test]
    fn precedence_like_botocore() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "senv"),
        ]);
        let s = Sources {
            env: &env,
            credentials_file: Some(CREDS.into()),
            config_file: Some(CONFIG.into()),
        };
        let p = s.profile(None).unwrap();
        assert_eq!(s.credentials(&p).unwrap().0.access_key_id, "AKIAENV");
        assert_eq!(s.region(None, &p.profile).as_deref(), Some("eu-west-1"));
        assert_eq!(
            s.config_value(&p.profile, "output").as_deref(),
            Some("table")
        );
        // --profile skips environment credentials.
        let p = s.profile(Some("cam")).unwrap();
        let (c, from) = s.credentials(&p).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref(), from),
            ("AKIACAM", Some("tok"), "shared-credentials-file")
        );
        assert_eq!(s.region(None, "cam").as_deref(), Some("ap-south-1"));
        assert_eq!(
            s.region(Some("us-west-2"), "cam").as_deref(),
            Some("us-west-2")
        );
        let p = s.profile(Some("cfgonly")).unwrap();
        assert_eq!(s.credentials(&p).unwrap().0.access_key_id, "AKIACFG");
        assert_eq!(
            s.profile(Some("nope")).unwrap_err().0,
            "The config profile (nope) could not be found"
        );
        let none = env_of(&[]);
        let s = Sources {
            env: &none,
            credentials_file: None,
            config_file: None,
        };
        assert!(s.credentials(&s.profile(None).unwrap()).is_none());
        assert_eq!(s.region(None, "default"), None);
    }
}
