//! Server-side validation of the model constraints (docs/wire.md#validation: botocore checks only required
//! and `min`; JS v3 nothing). Messages follow the Coral style AWS services answer with, e.g.
//! `1 validation error detected: Value 'bad name!' at 'streamName' failed to satisfy constraint:
//! Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+`, sent as
//! `InvalidArgumentException` 400. Member paths are the model member names with a lowercase first
//! letter, nested with `.` (`fragmentSelector.timestampRange.startTimestamp`); list members are
//! `tagKeyList.1.member` (1-based), as Coral prints them.

use regex::Regex;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::LazyLock;

use crate::error::ApiError;

/// A model `pattern`: the text printed in messages and the regex it must match in full.
pub struct Pattern {
    pub text: &'static str,
    regex: LazyLock<Regex>,
}

macro_rules! pattern {
    ($name:ident, $text:literal) => {
        pub static $name: Pattern = Pattern {
            text: $text,
            regex: LazyLock::new(|| {
                Regex::new(concat!("^(?:", $text, ")$")).expect("model pattern compiles")
            }),
        };
    };
}

pattern!(STREAM_NAME, "[a-zA-Z0-9_.-]+");
pattern!(DEVICE_NAME, "[a-zA-Z0-9_.-]+");
pattern!(
    MEDIA_TYPE,
    r"[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*"
);
pattern!(KMS_KEY_ID, ".+");
pattern!(
    RESOURCE_ARN,
    r"arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+"
);
pattern!(VERSION, "[a-zA-Z0-9]+");
pattern!(LIST_STREAMS_NEXT_TOKEN, "[a-zA-Z0-9+/=]*");
pattern!(ARCHIVED_NEXT_TOKEN, "[a-zA-Z0-9+/]+={0,2}");
pattern!(TAG_KEY, r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$");
pattern!(TAG_VALUE, r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*");
pattern!(FRAGMENT_NUMBER, "[0-9]+");
pattern!(CONTINUATION_TOKEN, r"[a-zA-Z0-9_\.\-]+");

impl Pattern {
    pub fn matches(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

/// Model constraints of a string member.
pub struct StrRule {
    pub min: usize,
    pub max: usize,
    pub pattern: Option<&'static Pattern>,
}

pub const STREAM_NAME_RULE: StrRule = StrRule {
    min: 1,
    max: 256,
    pattern: Some(&STREAM_NAME),
};
pub const DEVICE_NAME_RULE: StrRule = StrRule {
    min: 1,
    max: 128,
    pattern: Some(&DEVICE_NAME),
};
pub const MEDIA_TYPE_RULE: StrRule = StrRule {
    min: 1,
    max: 128,
    pattern: Some(&MEDIA_TYPE),
};
pub const KMS_KEY_ID_RULE: StrRule = StrRule {
    min: 1,
    max: 2048,
    pattern: Some(&KMS_KEY_ID),
};
pub const RESOURCE_ARN_RULE: StrRule = StrRule {
    min: 1,
    max: 1024,
    pattern: Some(&RESOURCE_ARN),
};
pub const VERSION_RULE: StrRule = StrRule {
    min: 1,
    max: 64,
    pattern: Some(&VERSION),
};
pub const LIST_STREAMS_NEXT_TOKEN_RULE: StrRule = StrRule {
    min: 0,
    max: 1024,
    pattern: Some(&LIST_STREAMS_NEXT_TOKEN),
};
pub const ARCHIVED_NEXT_TOKEN_RULE: StrRule = StrRule {
    min: 1,
    max: 4096,
    pattern: Some(&ARCHIVED_NEXT_TOKEN),
};
pub const FRAGMENT_NUMBER_RULE: StrRule = StrRule {
    min: 1,
    max: 128,
    pattern: Some(&FRAGMENT_NUMBER),
};
pub const CONTINUATION_TOKEN_RULE: StrRule = StrRule {
    min: 1,
    max: 128,
    pattern: Some(&CONTINUATION_TOKEN),
};
pub const TAG_KEY_RULE: StrRule = StrRule {
    min: 1,
    max: 128,
    pattern: Some(&TAG_KEY),
};
pub const TAG_VALUE_RULE: StrRule = StrRule {
    min: 0,
    max: 256,
    pattern: Some(&TAG_VALUE),
};

/// Collects constraint violations; [`Validator::finish`] turns them into one error.
#[derive(Default)]
pub struct Validator {
    errors: Vec<String>,
}

impl Validator {
    fn push(&mut self, value: Option<&dyn Display>, path: &str, constraint: impl Display) {
        let value = match value {
            Some(v) => format!("'{v}'"),
            None => "null".to_owned(),
        };
        self.errors.push(format!(
            "Value {value} at '{path}' failed to satisfy constraint: {constraint}"
        ));
    }

    /// `Member must not be null` when absent.
    pub fn required<T>(&mut self, path: &str, value: &Option<T>) {
        if value.is_none() {
            self.push(None, path, "Member must not be null");
        }
    }

    fn string_problems(value: &str, rule: &StrRule) -> Vec<String> {
        let mut problems = Vec::new();
        // Coral counts UTF-16 code units; for the ASCII patterns here chars are the same.
        let len = value.chars().count();
        if let Some(p) = rule.pattern {
            if !p.matches(value) {
                problems.push(format!(
                    "Member must satisfy regular expression pattern: {}",
                    p.text
                ));
            }
        }
        if len > rule.max {
            problems.push(format!(
                "Member must have length less than or equal to {}",
                rule.max
            ));
        }
        if len < rule.min {
            problems.push(format!(
                "Member must have length greater than or equal to {}",
                rule.min
            ));
        }
        problems
    }

    /// Length and pattern of an optional string member.
    pub fn string(&mut self, path: &str, value: Option<&str>, rule: &StrRule) {
        let Some(value) = value else { return };
        for problem in Self::string_problems(value, rule) {
            self.push(Some(&value), path, problem);
        }
    }

    /// A numeric range (`min`/`max` of the model).
    pub fn range(&mut self, path: &str, value: Option<i64>, min: Option<i64>, max: Option<i64>) {
        let Some(value) = value else { return };
        if let Some(max) = max {
            if value > max {
                self.push(
                    Some(&value),
                    path,
                    format!("Member must have value less than or equal to {max}"),
                );
            }
        }
        if let Some(min) = min {
            if value < min {
                self.push(
                    Some(&value),
                    path,
                    format!("Member must have value greater than or equal to {min}"),
                );
            }
        }
    }

    /// An enum member.
    pub fn one_of(&mut self, path: &str, value: Option<&str>, allowed: &[&str]) {
        let Some(value) = value else { return };
        if !allowed.contains(&value) {
            self.push(
                Some(&value),
                path,
                format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            );
        }
    }

    /// Size of a list or map member.
    pub fn count(&mut self, path: &str, shown: &dyn Display, len: usize, min: usize, max: usize) {
        if len > max {
            self.push(
                Some(shown),
                path,
                format!("Member must have length less than or equal to {max}"),
            );
        }
        if len < min {
            self.push(
                Some(shown),
                path,
                format!("Member must have length greater than or equal to {min}"),
            );
        }
    }

    /// A tag map (`ResourceTags`: 1..50 entries, keys and values per their rules).
    pub fn tag_map(&mut self, path: &str, tags: Option<&BTreeMap<String, String>>) {
        let Some(tags) = tags else { return };
        let shown = JavaMap(tags);
        self.count(path, &shown, tags.len(), 1, 50);
        let key_problems: Vec<String> = {
            let mut all: Vec<String> = tags
                .keys()
                .flat_map(|k| Self::string_problems(k, &TAG_KEY_RULE))
                .collect();
            all.sort();
            all.dedup();
            all
        };
        if !key_problems.is_empty() {
            self.push(
                Some(&shown),
                path,
                format!(
                    "Map keys must satisfy constraint: [{}]",
                    key_problems.join(", ")
                ),
            );
        }
        let value_problems: Vec<String> = {
            let mut all: Vec<String> = tags
                .values()
                .flat_map(|v| Self::string_problems(v, &TAG_VALUE_RULE))
                .collect();
            all.sort();
            all.dedup();
            all
        };
        if !value_problems.is_empty() {
            self.push(
                Some(&shown),
                path,
                format!(
                    "Map value must satisfy constraint: [{}]",
                    value_problems.join(", ")
                ),
            );
        }
    }

    /// A list of tag keys (`TagKeyList`: 1..50).
    pub fn tag_key_list(&mut self, path: &str, keys: Option<&Vec<String>>) {
        let Some(keys) = keys else { return };
        self.count(path, &JavaList(keys), keys.len(), 1, 50);
        for (i, key) in keys.iter().enumerate() {
            self.string(
                &format!("{path}.{}.member", i + 1),
                Some(key),
                &TAG_KEY_RULE,
            );
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(ApiError::InvalidArgument(format!(
                "1 validation error detected: {}",
                self.errors[0]
            ))),
            n => Err(ApiError::InvalidArgument(format!(
                "{n} validation errors detected: {}",
                self.errors.join("; ")
            ))),
        }
    }
}

/// Shows a map as Java's `toString` does (`{k=v, k2=v2}`), as Coral messages print it.
pub struct JavaMap<'a>(pub &'a BTreeMap<String, String>);

impl Display for JavaMap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        f.write_str("}")
    }
}

/// Shows a list as Java's `toString` does (`[a, b]`).
pub struct JavaList<'a, T>(pub &'a [T]);

impl<T: Display> Display for JavaList<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{v}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(v: Validator) -> String {
        match v.finish() {
            Err(ApiError::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn one_pattern_error_in_coral_style() {
        let mut v = Validator::default();
        v.string("streamName", Some("bad name!"), &STREAM_NAME_RULE);
        assert_eq!(
            message(v),
            "1 validation error detected: Value 'bad name!' at 'streamName' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        );
    }

    #[test]
    fn several_errors_are_counted_and_joined() {
        let mut v = Validator::default();
        v.required::<String>("aPIName", &None);
        v.range("maxResults", Some(0), Some(1), Some(10000));
        v.one_of(
            "operation",
            Some("GROW"),
            &["INCREASE_DATA_RETENTION", "DECREASE_DATA_RETENTION"],
        );
        assert_eq!(
            message(v),
            "3 validation errors detected: \
             Value null at 'aPIName' failed to satisfy constraint: Member must not be null; \
             Value '0' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1; \
             Value 'GROW' at 'operation' failed to satisfy constraint: Member must satisfy enum value set: \
             [INCREASE_DATA_RETENTION, DECREASE_DATA_RETENTION]"
        );
    }

    #[test]
    fn length_limits() {
        let mut v = Validator::default();
        v.string("streamName", Some(&"a".repeat(257)), &STREAM_NAME_RULE);
        assert!(message(v).contains("Member must have length less than or equal to 256"));
        let mut v = Validator::default();
        v.string("streamName", Some(""), &STREAM_NAME_RULE);
        let m = message(v);
        assert!(m.starts_with("2 validation errors detected"), "{m}");
        assert!(m.contains("Member must have length greater than or equal to 1"));
    }

    #[test]
    fn patterns_match_whole_values() {
        assert!(RESOURCE_ARN
            .matches("arn:aws:kinesisvideo:us-east-1:000000000000:stream/cam1/1700000000000"));
        assert!(!RESOURCE_ARN.matches("xarn:aws:kinesisvideo:us-east-1:0:stream/cam1/1"));
        assert!(MEDIA_TYPE.matches("video/h264,audio/aac"));
        assert!(!MEDIA_TYPE.matches("video"));
        assert!(TAG_KEY.matches("Ünïcode key:1"));
        assert!(!TAG_KEY.matches("bad*key"));
        assert!(ARCHIVED_NEXT_TOKEN.matches("YWJj"));
        assert!(!ARCHIVED_NEXT_TOKEN.matches("a=b"));
    }

    #[test]
    fn tag_map_limits() {
        let tags: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let mut v = Validator::default();
        v.tag_map("tags", Some(&tags));
        assert!(message(v).contains("at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50"));
        let tags: BTreeMap<String, String> = [("bad*".to_owned(), "v".to_owned())].into();
        let mut v = Validator::default();
        v.tag_map("tags", Some(&tags));
        assert_eq!(
            message(v),
            "1 validation error detected: Value '{bad*=v}' at 'tags' failed to satisfy constraint: Map keys must \
             satisfy constraint: [Member must satisfy regular expression pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$]"
        );
    }
}
