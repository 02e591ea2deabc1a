//! YAML for `--cli-input-yaml` (read with `serde_norway`, keeping key order) and for `--output yaml` /
//! `yaml-stream` and `--generate-cli-skeleton yaml-input`, written as AWS CLI v2 writes it (ruamel.yaml's safe
//! dumper, block style: keys sorted, sequences not indented under their key, strings quoted only when a plain
//! scalar would read back as something else).

use super::model::Service;
use super::value::{py_float_repr, Value};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

struct OrderedValue(Value);

impl<'de> Deserialize<'de> for OrderedValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(OrderedValue)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v)
            .map(Value::Int)
            .unwrap_or(Value::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(OrderedValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Value::Map(Vec::new());
        while let Some((OrderedValue(k), OrderedValue(v))) = map.next_entry()? {
            let key = match k {
                Value::Str(s) => s,
                other => other.py_str(),
            };
            out.set(&key, v);
        }
        Ok(out)
    }
}

/// Parses `--cli-input-yaml` text; an empty document is an empty map.
pub(crate) fn parse_yaml(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Map(Vec::new()));
    }
    serde_norway::from_str::<OrderedValue>(text)
        .map(|v| match v.0 {
            Value::Null => Value::Map(Vec::new()),
            other => other,
        })
        .map_err(|e| format!("Invalid YAML: {e}"))
}

/// `yaml.dump(value)` with ruamel's safe dumper (block style).
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Map(pairs) if !pairs.is_empty() => write_map(&mut out, pairs, 0),
        Value::List(items) if !items.is_empty() => write_list(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
            if scalar.is_scalar() {
                // A lone scalar document ends with the document-end marker.
                out.push_str("...\n");
            }
        }
    }
    out
}

fn sorted(pairs: &[(String, Value)]) -> Vec<&(String, Value)> {
    let mut refs: Vec<&(String, Value)> = pairs.iter().collect();
    refs.sort_by(|a, b| a.0.cmp(&b.0));
    refs
}

fn write_map(out: &mut String, pairs: &[(String, Value)], indent: usize) {
    for (i, (key, value)) in sorted(pairs).into_iter().enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&plain_or_quoted(key));
        out.push(':');
        write_child(out, value, indent);
    }
}

/// After `key:` — scalars and empty containers inline, mappings indented by 2, sequences at the key's indent.
fn write_child(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Map(pairs) if !pairs.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent + 2));
            write_map(out, pairs, indent + 2);
        }
        Value::List(items) if !items.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            write_list(out, items, indent);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match item {
            Value::Map(pairs) if !pairs.is_empty() => write_map(out, pairs, indent + 2),
            Value::List(inner) if !inner.is_empty() => write_list(out, inner, indent + 2),
            scalar => {
                out.push_str(&scalar_text(scalar));
                out.push('\n');
            }
        }
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => if *b { "true" } else { "false" }.to_owned(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_nan() => ".nan".to_owned(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { ".inf" } else { "-.inf" }.to_owned(),
        Value::Float(f) => py_float_repr(*f),
        Value::Str(s) => plain_or_quoted(s),
        Value::List(_) => "[]".to_owned(),
        Value::Map(_) => "{}".to_owned(),
    }
}

/// Would a plain scalar read back as a non-string (YAML 1.2 core / 1.1 implicit types ruamel resolves)?
fn resolves_to_non_string(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "" | "~"
            | "null"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | ".inf"
            | "-.inf"
            | "+.inf"
            | ".nan"
    ) {
        return true;
    }
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return true;
    }
    if t.starts_with("0x") || t.starts_with("0o") || t.starts_with("0b") {
        return true;
    }
    if s.parse::<f64>().is_ok() && s.bytes().any(|b| b.is_ascii_digit()) {
        return true;
    }
    // Timestamps: 2001-12-14, 2001-12-14t21:59:43.10-05:00, …
    let b = s.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// A key or string value: plain when safe, else single-quoted (double-quoted if it has control characters).
fn plain_or_quoted(s: &str) -> String {
    let needs_double = s
        .chars()
        .any(|c| (c as u32) < 0x20 && c != '\n' || c == '\u{7f}');
    if needs_double {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    out.push_str(&format!("\\x{:02X}", c as u32))
                }
                c => out.push(c),
            }
        }
        out.push('"');
        return out;
    }
    let first = s.chars().next();
    let plain_ok = !resolves_to_non_string(s)
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && !s.contains('\n')
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !matches!(
            first,
            Some(
                '-' | '?'
                    | ':'
                    | ','
                    | '['
                    | ']'
                    | '{'
                    | '}'
                    | '#'
                    | '&'
                    | '*'
                    | '!'
                    | '|'
                    | '>'
                    | '\''
                    | '"'
                    | '%'
                    | '@'
                    | '`'
            )
        )
        || (matches!(first, Some('-' | '?' | ':'))
            && s.len() > 1
            && !s[1..].starts_with(' ')
            && !resolves_to_non_string(s)
            && !s.contains(": ")
            && !s.contains(" #")
            && !s.ends_with(' '));
    if plain_ok {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// `--generate-cli-skeleton yaml-input`: the input skeleton as YAML, enums annotated with their valid values.
pub(crate) fn skeleton_yaml(service: &Service, shape_name: &str, value: &Value) -> String {
    let mut out = String::new();
    skeleton_map(service, shape_name, value, 0, &mut out);
    out
}

fn skeleton_map(
    service: &Service,
    shape_name: &str,
    value: &Value,
    indent: usize,
    out: &mut String,
) {
    let shape = service.shape(shape_name);
    let Value::Map(pairs) = value else { return };
    for (key, item) in pairs {
        let member_shape = shape
            .members
            .iter()
            .find(|(m, _)| m == key)
            .map(|(_, s)| service.shape(s).clone());
        let required = shape.required.contains(key);
        out.push_str(&" ".repeat(indent));
        out.push_str(key);
        out.push(':');
        let mut comment = String::new();
        if required {
            comment.push_str("  # [REQUIRED]");
        }
        if let Some(ms) = &member_shape {
            if !ms.enum_values.is_empty() {
                comment.push_str(if required { " " } else { "  # " });
                comment.push_str(&format!("Valid values are: {}.", ms.enum_values.join(", ")));
            }
        }
        match item {
            Value::Map(inner) if !inner.is_empty() => {
                out.push_str(&comment);
                out.push('\n');
                let child = member_shape.map(|s| s.name).unwrap_or_default();
                if service.shape(&child).type_name == "structure" {
                    skeleton_map(service, &child, item, indent + 2, out);
                } else {
                    for (k, v) in inner {
                        out.push_str(&format!(
                            "{}{}: {}\n",
                            " ".repeat(indent + 2),
                            k,
                            scalar_text(v)
                        ));
                    }
                }
            }
            Value::List(items) if !items.is_empty() => {
                out.push_str(&comment);
                out.push('\n');
                for v in items {
                    out.push_str(&format!("{}- {}\n", " ".repeat(indent), scalar_text(v)));
                }
            }
            scalar => {
                out.push(' ');
                out.push_str(&scalar_text(scalar));
                out.push_str(&comment);
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::value::parse_json;

    #[test]
    fn dumps_like_ruamel_safe() {
        let v = parse_json(
            r#"{"StreamInfoList": [{"StreamName": "s1", "CreationTime": 1795576049.109, "Status": "ACTIVE"}], "Tags": {}, "B": "2024-01-01", "A": "arn:aws:x", "C": "yes"}"#,
        )
        .unwrap();
        assert_eq!(
            to_yaml(&v),
            "A: arn:aws:x\nB: '2024-01-01'\nC: 'yes'\nStreamInfoList:\n- CreationTime: 1795576049.109\n  Status: ACTIVE\n  StreamName: s1\nTags: {}\n"
        );
    }

    #[test]
    fn reads_yaml_in_order() {
        let v = parse_yaml("StreamName: s1\nHLSFragmentSelector:\n  FragmentSelectorType: SERVER_TIMESTAMP\nExpires: 300\n").unwrap();
        assert_eq!(
            crate::client::value::to_json_compact(&v),
            r#"{"StreamName": "s1", "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP"}, "Expires": 300}"#
        );
    }
}
