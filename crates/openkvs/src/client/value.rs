//! An order-preserving JSON value (the AWS CLI keeps the order of keys as parsed, Python-dict style), its parser,
//! and its renderings as Python prints them: `json.dumps(indent=4, ensure_ascii=False)` and `str()`.

use std::fmt::Write as _;

/// A JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` in a map, replacing an existing entry in place (Python `d[key] = value`).
    pub(crate) fn set(&mut self, key: &str, value: Value) {
        if let Value::Map(pairs) = self {
            if let Some(slot) = pairs.iter_mut().find(|(k, _)| k == key) {
                slot.1 = value;
            } else {
                pairs.push((key.to_owned(), value));
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Value> {
        if let Value::Map(pairs) = self {
            let index = pairs.iter().position(|(k, _)| k == key)?;
            return Some(pairs.remove(index).1);
        }
        None
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn is_scalar(&self) -> bool {
        !matches!(self, Value::List(_) | Value::Map(_))
    }

    /// Python truthiness (`if not current`): empty containers, "", 0, False and None are false.
    pub(crate) fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Python `str(value)` for scalars (`True`, `None`, float `repr`); containers as Python would print them.
    pub(crate) fn py_str(&self) -> String {
        match self {
            Value::Null => "None".to_owned(),
            Value::Bool(true) => "True".to_owned(),
            Value::Bool(false) => "False".to_owned(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => py_float_repr(*f),
            Value::Str(s) => s.clone(),
            other => py_repr(other),
        }
    }
}

/// Python `repr` of a container (used only where the AWS CLI would `str()` a list or dict).
fn py_repr(value: &Value) -> String {
    match value {
        Value::Str(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::List(items) => {
            let parts: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Map(pairs) => {
            let parts: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("'{k}': {}", py_repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        other => other.py_str(),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, fixed notation for exponents -4..16, else `1e+16` style.
pub(crate) fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    let sci = format!("{:e}", f.abs()); // e.g. "1.795576049109e9"
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exponent) {
        let point = exponent + 1; // digits before the decimal point
        if point <= 0 {
            format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
        } else if digits.len() as i32 <= point {
            format!(
                "{sign}{digits}{}.0",
                "0".repeat((point - digits.len() as i32) as usize)
            )
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{sign}{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs())
    }
}

/// `json.dumps(value, indent=4, ensure_ascii=False)`.
pub(crate) fn to_json_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value, Some(4), 0, false);
    out
}

/// `json.dumps(value)` (separators `, ` and `: `, non-ASCII as `\uXXXX`), as botocore sends request bodies.
pub fn to_json_compact(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value, None, 0, true);
    out
}

fn write_json(out: &mut String, value: &Value, indent: Option<usize>, level: usize, ascii: bool) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&py_float_repr(*f)),
        Value::Str(s) => write_json_string(out, s, ascii),
        Value::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    if indent.is_none() {
                        out.push(' ');
                    }
                }
                newline(out, indent, level + 1);
                write_json(out, item, indent, level + 1, ascii);
            }
            newline(out, indent, level);
            out.push(']');
        }
        Value::Map(pairs) => {
            if pairs.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (key, item)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    if indent.is_none() {
                        out.push(' ');
                    }
                }
                newline(out, indent, level + 1);
                write_json_string(out, key, ascii);
                out.push_str(": ");
                write_json(out, item, indent, level + 1, ascii);
            }
            newline(out, indent, level);
            out.push('}');
        }
    }
}

fn newline(out: &mut String, indent: Option<usize>, level: usize) {
    if let Some(width) = indent {
        out.push('\n');
        out.push_str(&" ".repeat(width * level));
    }
}

fn write_json_string(out: &mut String, s: &str, ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON syntax error, worded like Python's `json` module (`Expecting value: line 1 column 1 (char 0)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(pub String);

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses JSON keeping object key order (later duplicates replace earlier ones, as in Python).
pub fn parse_json(text: &str) -> Result<Value, JsonError> {
    let mut parser = JsonParser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    parser.skip_ws();
    let value = parser.value()?;
    parser.skip_ws();
    if parser.pos != parser.bytes.len() {
        return Err(parser.error("Extra data"));
    }
    Ok(value)
}

/// Deepest array / object nesting read: Python's json stops between 900 and 1000 levels (its recursion limit).
const MAX_DEPTH: usize = 900;

struct JsonParser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// How many arrays and objects are open.
    depth: usize,
}

impl JsonParser<'_> {
    fn error(&self, what: &str) -> JsonError {
        let before = &self.text[..self.pos.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = match before.rfind('\n') {
            Some(nl) => before[nl + 1..].chars().count() + 1,
            None => before.chars().count() + 1,
        };
        let char_index = before.chars().count();
        JsonError(format!(
            "{what}: line {line} column {column} (char {char_index})"
        ))
    }

    fn skip_ws(&mut self) {
        while self.pos < self.bytes.len()
            && matches!(self.bytes[self.pos], b' ' | b'\t' | b'\n' | b'\r')
        {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, JsonError> {
        match self.bytes.get(self.pos) {
            Some(b'{') => self.nested("object", Self::object),
            Some(b'[') => self.nested("array", Self::array),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') if self.text[self.pos..].starts_with("true") => {
                self.pos += 4;
                Ok(Value::Bool(true))
            }
            Some(b'f') if self.text[self.pos..].starts_with("false") => {
                self.pos += 5;
                Ok(Value::Bool(false))
            }
            Some(b'n') if self.text[self.pos..].starts_with("null") => {
                self.pos += 4;
                Ok(Value::Null)
            }
            // Python's json reads (and json.dumps writes) these three non-JSON constants.
            Some(b'N') if self.text[self.pos..].starts_with("NaN") => {
                self.pos += 3;
                Ok(Value::Float(f64::NAN))
            }
            Some(b'I') if self.text[self.pos..].starts_with("Infinity") => {
                self.pos += 8;
                Ok(Value::Float(f64::INFINITY))
            }
            Some(b'-') if self.text[self.pos..].starts_with("-Infinity") => {
                self.pos += 9;
                Ok(Value::Float(f64::NEG_INFINITY))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("Expecting value")),
        }
    }

    /// `parse` one level deeper, or the `RecursionError` text Python's json gives.
    fn nested(
        &mut self,
        what: &str,
        parse: fn(&mut Self) -> Result<Value, JsonError>,
    ) -> Result<Value, JsonError> {
        if self.depth >= MAX_DEPTH {
            return Err(JsonError(format!(
                "maximum recursion depth exceeded while decoding a JSON {what} from a unicode string"
            )));
        }
        self.depth += 1;
        let value = parse(self);
        self.depth -= 1;
        value
    }

    fn object(&mut self) -> Result<Value, JsonError> {
        self.pos += 1;
        let mut map = Value::Map(Vec::new());
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(map);
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error("Expecting property name enclosed in double quotes"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.error("Expecting ':' delimiter"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            map.set(&key, value);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(map);
                }
                _ => return Err(self.error("Expecting ',' delimiter")),
            }
        }
    }

    fn array(&mut self) -> Result<Value, JsonError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::List(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::List(items));
                }
                _ => return Err(self.error("Expecting ',' delimiter")),
            }
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                self.pos = start;
                return Err(self.error("Unterminated string starting at"));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let esc = self.bytes.get(self.pos + 1).copied();
                    self.pos += 2;
                    match esc {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let mut code = self.hex4()?;
                            if (0xd800..0xdc00).contains(&code)
                                && self.text[self.pos..].starts_with("\\u")
                            {
                                self.pos += 2;
                                let low = self.hex4()?;
                                code = 0x10000
                                    + ((code - 0xd800) << 10)
                                    + (low.wrapping_sub(0xdc00) & 0x3ff);
                            }
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        _ => {
                            self.pos -= 2;
                            return Err(self.error("Invalid \\escape"));
                        }
                    }
                }
                b if b < 0x20 => return Err(self.error("Invalid control character at")),
                _ => {
                    let rest = &self.text[self.pos..];
                    let c = rest.chars().next().unwrap_or('\u{fffd}');
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self.text.get(self.pos..self.pos + 4).unwrap_or("");
        let code =
            u32::from_str_radix(digits, 16).map_err(|_| self.error("Invalid \\uXXXX escape"))?;
        self.pos += 4;
        Ok(code)
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        let digits_start = self.pos;
        // `0|[1-9]\d*`: after a leading 0 the number ends (`05` is 0, then "Extra data", as in Python).
        if self.bytes.get(self.pos) == Some(&b'0') {
            self.pos += 1;
        } else {
            while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_digit() {
                self.pos += 1;
            }
        }
        if self.pos == digits_start {
            self.pos = start;
            return Err(self.error("Expecting value"));
        }
        let mut is_float = false;
        if self.bytes.get(self.pos) == Some(&b'.')
            && self.bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
        {
            is_float = true;
            self.pos += 1;
            while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_digit() {
                self.pos += 1;
            }
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
                is_float = true;
                while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
            } else {
                self.pos = save;
            }
        }
        let text = &self.text[start..self.pos];
        if !is_float {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::Int(i));
            }
        }
        Ok(Value::Float(text.parse::<f64>().unwrap_or(f64::NAN)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        for (f, want) in [
            (1795576049.109, "1795576049.109"),
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (123456789012345.0, "123456789012345.0"),
        ] {
            assert_eq!(py_float_repr(f), want);
        }
    }

    #[test]
    fn json_round_trip_keeps_order() {
        let v = parse_json(r#"{"b": 1, "a": [1.5, "x\u00e9", {}, []], "c": null}"#).unwrap();
        assert_eq!(
            to_json_compact(&v),
            r#"{"b": 1, "a": [1.5, "x\u00e9", {}, []], "c": null}"#
        );
        assert_eq!(
            to_json_pretty(&v),
            "{\n    \"b\": 1,\n    \"a\": [\n        1.5,\n        \"xé\",\n        {},\n        []\n    ],\n    \"c\": null\n}"
        );
        assert_eq!(
            parse_json("{\"a\" 1}").unwrap_err().0,
            "Expecting ':' delimiter: line 1 column 6 (char 5)"
        );
    }

    /// Found by the `jmespath` fuzz target: `05e606` read as 5e606 (infinite), printed as `Infinity`, which did
    /// not read back. Python's json reads `05…` as 0 followed by extra data, and reads the constants it writes.
    #[test]
    fn numbers_and_constants_as_python_reads_them() {
        for text in ["05e606", "00", "-01", "0123"] {
            assert_eq!(
                parse_json(text).unwrap_err().0,
                format!(
                    "Extra data: line 1 column {} (char {})",
                    text.find('0').unwrap() + 2,
                    text.find('0').unwrap() + 1
                ),
                "{text}"
            );
        }
        assert_eq!(parse_json("0").unwrap(), Value::Int(0));
        assert_eq!(parse_json("-0.5e1").unwrap(), Value::Float(-5.0));
        assert_eq!(parse_json("1e606").unwrap(), Value::Float(f64::INFINITY));
        let v = parse_json("[Infinity, -Infinity, NaN]").unwrap();
        assert_eq!(to_json_compact(&v), "[Infinity, -Infinity, NaN]");
        let Value::List(items) = &v else {
            panic!("{v:?}")
        };
        assert_eq!(
            items[..2],
            [Value::Float(f64::INFINITY), Value::Float(f64::NEG_INFINITY)]
        );
        assert!(matches!(items[2], Value::Float(f) if f.is_nan()));
        assert_eq!(
            parse_json(&to_json_compact(&Value::Float(f64::INFINITY))).unwrap(),
            Value::Float(f64::INFINITY)
        );
        for bad in ["-", "-I", "Inf", "nan"] {
            assert!(parse_json(bad).is_err(), "{bad}");
        }
    }

    /// `[[[[…` 100 000 deep overflowed the stack (and aborted the CLI); Python's json stops at its recursion limit.
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for (open, what) in [("[", "array"), ("{\"a\": ", "object")] {
            assert_eq!(
                parse_json(&open.repeat(100_000)).unwrap_err().0,
                format!(
                    "maximum recursion depth exceeded while decoding a JSON {what} from a unicode string"
                )
            );
        }
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(to_json_compact(&parse_json(&ok).unwrap()), ok);
    }
}
