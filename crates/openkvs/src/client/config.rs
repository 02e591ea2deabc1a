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

/// `value` unless it is blank (botocore treats an empty setting as unset).
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
pub fn credentials_path(env: &dyn Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
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

/// An AWS shared credentials or config file, read as botocore reads it (Python's `configparser.RawConfigParser`):
/// `[section]` headers (names as written), `key = value` or `key: value` (keys lower-cased, both sides trimmed),
/// whole-line `#` / `;` comments (also indented; no inline comments), and lines indented deeper than their key
/// continuing its value, as the nested `s3 =` blocks of `~/.aws/config` do. Where configparser raises (a line
/// before any section or without a delimiter, a repeated section or key), this reader skips the line or keeps
/// the first occurrence, so one stray line does not hide a whole file.
///
/// One reader for the client ([`Sources`]) and `openkvs put-media`. Not `rust-ini`: it reads an indented comment
/// or a line without `=` as the start of the next key, silently losing that key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Ini {
    /// Reads `text`; never fails (see the type's doc).
    pub fn parse(text: &str) -> Ini {
        let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
        // configparser's `indent_level`: the indentation of the last header or key line.
        let mut indent_level = 0;
        // The value deeper-indented lines continue: its index in the current section (`Some(None)` for a
        // repeated key, whose lines are dropped), or `None` after a header.
        let mut open: Option<Option<usize>> = None;
        for line in text.lines() {
            let trimmed = line.trim();
            // Blank and comment lines neither end a value nor add to it.
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            if let (Some(slot), true) = (open, indent > indent_level) {
                if let (Some(index), Some((_, pairs))) = (slot, sections.last_mut()) {
                    let value = &mut pairs[index].1;
                    if !value.is_empty() {
                        value.push('\n');
                    }
                    value.push_str(trimmed);
                }
                continue;
            }
            indent_level = indent;
            // configparser's `\[(?P<header>.+)\]`: up to the last `]`, not trimmed.
            if let Some(name) = trimmed
                .strip_prefix('[')
                .and_then(|rest| rest.rfind(']').map(|end| &rest[..end]))
                .filter(|name| !name.is_empty())
            {
                sections.push((name.to_owned(), Vec::new()));
                open = None;
                continue;
            }
            let (Some(at), Some((_, pairs))) = (trimmed.find(['=', ':']), sections.last_mut())
            else {
                continue;
            };
            let key = trimmed[..at].trim().to_lowercase();
            if key.is_empty() {
                continue;
            }
            open = Some(if pairs.iter().any(|(k, _)| *k == key) {
                None
            } else {
                pairs.push((key, trimmed[at + 1..].trim().to_owned()));
                Some(pairs.len() - 1)
            });
        }
        Ini { sections }
    }

    /// Whether the file has a section named exactly `section`.
    pub fn has_section(&self, section: &str) -> bool {
        self.sections.iter().any(|(name, _)| name == section)
    }

    /// The value of `key` (any case) in the first section named `section`; `None` when absent or blank.
    pub fn get(&self, section: &str, key: &str) -> Option<String> {
        let (_, pairs) = self.sections.iter().find(|(name, _)| name == section)?;
        let key = key.to_lowercase();
        non_empty(
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone()),
        )
    }
}

fn section_value(text: Option<&str>, section: &str, key: &str) -> Option<String> {
    Ini::parse(text?).get(section, key)
}

fn has_section(text: Option<&str>, section: &str) -> bool {
    text.is_some_and(|t| Ini::parse(t).has_section(section))
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
    fn reads_files_as_configparser_does() {
        // Each case was read by Python's configparser.RawConfigParser (botocore's reader) for the values below.
        let ini = Ini::parse(
            "[default]\n  # an indented comment\nregion = eu-west-1\ns3 =\n    max_concurrent_requests = 20\n\n    \
             addressing_style = path\noutput: json # not a comment\n[Cam]\nAWS_ACCESS_KEY_ID: AKIA\n\
             aws_secret_access_key=  s/k+=x y  \r\n[ spaced ]\nk = v\n",
        );
        assert_eq!(ini.get("default", "region").as_deref(), Some("eu-west-1"));
        assert_eq!(
            ini.get("default", "s3").as_deref(),
            Some("max_concurrent_requests = 20\naddressing_style = path")
        );
        // The nested block's keys are not the section's.
        assert_eq!(ini.get("default", "addressing_style"), None);
        assert_eq!(
            ini.get("default", "output").as_deref(),
            Some("json # not a comment")
        );
        assert_eq!(ini.get("Cam", "aws_access_key_id").as_deref(), Some("AKIA"));
        assert_eq!(ini.get("Cam", "AWS_Access_Key_Id").as_deref(), Some("AKIA"));
        assert_eq!(
            ini.get("Cam", "aws_secret_access_key").as_deref(),
            Some("s/k+=x y")
        );
        assert!(!ini.has_section("cam"));
        assert!(ini.has_section(" spaced "));
        assert!(!ini.has_section("spaced"));
    }

    #[test]
    fn skips_what_configparser_refuses() {
        // configparser raises on each of these; one bad line must not hide the keys around it.
        let ini = Ini::parse(
            "region = before-any-section\n[default]\ngarbage line\nregion = a\n= no key\nregion = b\n\
             [default]\nregion = c\noutput = text\n[]\n",
        );
        assert_eq!(ini.get("default", "region").as_deref(), Some("a"));
        assert_eq!(ini.get("default", "output"), None);
        assert_eq!(Ini::parse("").get("default", "region"), None);
        assert_eq!(
            Ini::parse("[default]\nregion =\n").get("default", "region"),
            None
        );
    }

    #[test]
    fn file_locations() {
        let home = env_of(&[("HOME", "/home/u")]);
        assert_eq!(
            credentials_path(&home),
            Some(std::path::PathBuf::from("/home/u/.aws/credentials"))
        );
        assert_eq!(
            config_path(&home),
            Some(std::path::PathBuf::from("/home/u/.aws/config"))
        );
        let set = env_of(&[
            ("HOME", "/home/u"),
            ("AWS_SHARED_CREDENTIALS_FILE", "~/creds"),
            ("AWS_CONFIG_FILE", "/etc/aws-config"),
        ]);
        assert_eq!(
            credentials_path(&set),
            Some(std::path::PathBuf::from("/home/u/creds"))
        );
        assert_eq!(
            config_path(&set),
            Some(std::path::PathBuf::from("/etc/aws-config"))
        );
        assert_eq!(credentials_path(&env_of(&[])), None);
    }

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
