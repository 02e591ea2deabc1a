//! The AWS CLI's shorthand syntax (`FragmentSelectorType=string,TimestampRange={StartTimestamp=…}`): a port of
//! awscli `shorthand.py` `ShorthandParser` (purely syntactic) and `BackCompatVisitor` (model-driven fix-ups).

use super::model::Service;
use super::value::Value;

/// A parse failure, worded as awscli words it (`Expected: '=', received: 'EOF' for input:` + a caret line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShorthandError(pub String);

pub fn parse(input: &str) -> Result<Value, ShorthandError> {
    let chars: Vec<char> = input.chars().collect();
    let mut parser = Parser {
        input,
        chars,
        index: 0,
        depth: 0,
    };
    parser.parameter()
}

/// Deepest `[…]` / `{…}` nesting read: awscli's recursive parser stops between 400 and 500 levels with
/// Python's `RecursionError` ("maximum recursion depth exceeded"), and each level here costs stack.
const MAX_DEPTH: usize = 400;

struct Parser<'a> {
    input: &'a str,
    chars: Vec<char>,
    index: usize,
    /// How many lists and hashes are open.
    depth: usize,
}

fn is_py_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// `_START_WORD`: `\!\#-&\(-\+\--\<\>-Z\\\\-z\u007c-\uffff`.
fn is_start_word(c: char) -> bool {
    matches!(c, '!' | '#'..='&' | '('..='+' | '-'..='<' | '>'..='Z' | '\\'..='z' | '|'..='\u{ffff}')
}

/// `_FIRST_FOLLOW_CHARS`: `\s\!\#-&\(-\+\--\\\\\^-\|~-\uffff`.
fn is_first_follow(c: char) -> bool {
    c.is_whitespace()
        || matches!(c, '!' | '#'..='&' | '('..='+' | '-'..='\\' | '^'..='|' | '~'..='\u{ffff}')
}

/// `_SECOND_FOLLOW_CHARS`: `\s\!\#-&\(-\+\--\<\>-\uffff`.
fn is_second_follow(c: char) -> bool {
    c.is_whitespace() || matches!(c, '!' | '#'..='&' | '('..='+' | '-'..='<' | '>'..='\u{ffff}')
}

impl Parser<'_> {
    fn current(&self) -> Option<char> {
        self.chars.get(self.index).copied()
    }

    fn at_eof(&self) -> bool {
        self.index >= self.chars.len()
    }

    fn error_location(&self, index: usize) -> String {
        let before: String = self.chars[..index.min(self.chars.len())].iter().collect();
        let after: String = self.chars[index.min(self.chars.len())..].iter().collect();
        let mut consumed = self.input.to_owned();
        let mut remaining = String::new();
        let mut spaces = index;
        if let Some(nl) = before.rfind('\n') {
            spaces = before[nl + 1..].chars().count();
        }
        if let Some(nl) = after.find('\n') {
            consumed = format!("{before}{}", &after[..nl]);
            remaining = after[nl..].to_owned();
        }
        format!("{consumed}\n{}^{remaining}", " ".repeat(spaces))
    }

    fn syntax_error(&self, expected: &str, actual: &str) -> ShorthandError {
        ShorthandError(format!(
            "Expected: '{expected}', received: '{actual}' for input:\n{}",
            self.error_location(self.index)
        ))
    }

    fn consume_whitespace(&mut self) {
        while self.current().is_some_and(is_py_whitespace) {
            self.index += 1;
        }
    }

    fn expect(&mut self, c: char, consume_whitespace: bool) -> Result<(), ShorthandError> {
        if consume_whitespace {
            self.consume_whitespace();
        }
        match self.current() {
            None => return Err(self.syntax_error(&c.to_string(), "EOF")),
            Some(actual) if actual != c => {
                return Err(self.syntax_error(&c.to_string(), &actual.to_string()))
            }
            _ => {}
        }
        self.index += 1;
        if consume_whitespace {
            self.consume_whitespace();
        }
        Ok(())
    }

    /// `expect('@', true)` when the next character is `@`, else nothing. Not by trying `expect`: its error
    /// message copies the whole input, which made deep nesting quadratic (seen as 16 runs/s while fuzzing).
    fn optional_at_sign(&mut self) {
        let save = self.index;
        self.consume_whitespace();
        if self.current() == Some('@') {
            self.index += 1;
            self.consume_whitespace();
        } else {
            self.index = save;
        }
    }

    fn parameter(&mut self) -> Result<Value, ShorthandError> {
        let mut params = Value::Map(Vec::new());
        let (key, value) = self.keyval()?;
        params.set(&key, value);
        let mut last_index = self.index;
        while !self.at_eof() {
            self.expect(',', true)?;
            let (key, value) = self.keyval()?;
            if params.get(&key).is_some() {
                return Err(ShorthandError(format!(
                    "Second instance of key \"{key}\" encountered for input:\n{}\nThis is often because there is a \
                     preceding \",\" instead of a space.",
                    self.error_location(last_index + 1)
                )));
            }
            params.set(&key, value);
            last_index = self.index;
        }
        Ok(params)
    }

    fn keyval(&mut self) -> Result<(String, Value), ShorthandError> {
        let key = self.key();
        // `key@=value` asks for file:// resolution; openkvs reads no files there, the value is kept literally.
        self.optional_at_sign();
        self.expect('=', true)?;
        let value = self.values()?;
        Ok((key, value))
    }

    fn key(&mut self) -> String {
        let start = self.index;
        while let Some(c) = self.current() {
            if !(c.is_ascii_alphanumeric() || "-_.#/:".contains(c)) {
                break;
            }
            self.index += 1;
        }
        self.chars[start..self.index].iter().collect()
    }

    fn values(&mut self) -> Result<Value, ShorthandError> {
        match self.current() {
            None => Ok(Value::Str(String::new())),
            Some('[') => self.nested(Self::explicit_list),
            Some('{') => self.nested(Self::hash_literal),
            _ => self.csv_value(),
        }
    }

    fn csv_value(&mut self) -> Result<Value, ShorthandError> {
        let first = self.first_value()?;
        self.consume_whitespace();
        if self.at_eof() || self.current() != Some(',') {
            return Ok(first);
        }
        self.expect(',', true)?;
        let mut list = vec![first.clone()];
        loop {
            match self.second_value() {
                Ok(current) => {
                    self.consume_whitespace();
                    if self.at_eof() {
                        list.push(current);
                        break;
                    }
                    if let Err(e) = self.expect(',', true) {
                        if self.at_eof() {
                            return Err(e);
                        }
                        self.backtrack_to(',');
                        break;
                    }
                    list.push(current);
                }
                Err(e) => {
                    if self.at_eof() {
                        return Err(e);
                    }
                    self.backtrack_to(',');
                    break;
                }
            }
        }
        if list.len() == 1 {
            return Ok(first);
        }
        Ok(Value::List(list))
    }

    fn backtrack_to(&mut self, c: char) {
        while self.index > 0 && self.chars.get(self.index) != Some(&c) {
            self.index -= 1;
        }
    }

    /// `(\\,|START)(\\,|FOLLOW)*`, anchored at the current index; returns the matched text.
    fn match_word(&mut self, follow: fn(char) -> bool) -> Option<String> {
        let start = self.index;
        let mut i = self.index;
        let mut first = true;
        loop {
            let c = self.chars.get(i).copied();
            if c == Some('\\') && self.chars.get(i + 1) == Some(&',') {
                i += 2;
            } else if let Some(c) = c.filter(|&c| if first { is_start_word(c) } else { follow(c) })
            {
                let _ = c;
                i += 1;
            } else {
                break;
            }
            first = false;
        }
        if i == start {
            return None;
        }
        self.index = i;
        Some(self.chars[start..i].iter().collect())
    }

    fn value(&mut self) -> Value {
        match self.match_word(is_first_follow) {
            Some(text) => Value::Str(
                text.replace("\\,", ",")
                    .trim_end_matches(is_py_whitespace)
                    .to_owned(),
            ),
            None => Value::Str(String::new()),
        }
    }

    fn explicit_list(&mut self) -> Result<Value, ShorthandError> {
        self.expect('[', true)?;
        let mut values = Vec::new();
        while self.current() != Some(']') {
            if self.at_eof() {
                return Err(self.syntax_error("]", "EOF"));
            }
            values.push(self.explicit_values()?);
            self.consume_whitespace();
            if self.current() != Some(']') {
                self.expect(',', false)?;
                self.consume_whitespace();
            }
        }
        self.expect(']', false)?;
        Ok(Value::List(values))
    }

    fn explicit_values(&mut self) -> Result<Value, ShorthandError> {
        match self.current() {
            Some('[') => self.nested(Self::explicit_list),
            Some('{') => self.nested(Self::hash_literal),
            _ => self.first_value(),
        }
    }

    /// `parse` one level deeper, or the error awscli gives when Python runs out of recursion.
    fn nested(
        &mut self,
        parse: fn(&mut Self) -> Result<Value, ShorthandError>,
    ) -> Result<Value, ShorthandError> {
        if self.depth >= MAX_DEPTH {
            return Err(ShorthandError(
                "maximum recursion depth exceeded".to_owned(),
            ));
        }
        self.depth += 1;
        let value = parse(self);
        self.depth -= 1;
        value
    }

    fn hash_literal(&mut self) -> Result<Value, ShorthandError> {
        self.expect('{', true)?;
        let mut map = Value::Map(Vec::new());
        while self.current() != Some('}') {
            if self.at_eof() {
                return Err(self.syntax_error("=", "EOF"));
            }
            let key = self.key();
            self.optional_at_sign();
            self.expect('=', true)?;
            let value = self.explicit_values()?;
            self.consume_whitespace();
            if self.current() != Some('}') {
                self.expect(',', false)?;
                self.consume_whitespace();
            }
            map.set(&key, value);
        }
        self.expect('}', false)?;
        Ok(map)
    }

    fn first_value(&mut self) -> Result<Value, ShorthandError> {
        match self.current() {
            Some('\'') => self.quoted('\''),
            Some('"') => self.quoted('"'),
            _ => Ok(self.value()),
        }
    }

    fn second_value(&mut self) -> Result<Value, ShorthandError> {
        match self.current() {
            Some('\'') => self.quoted('\''),
            Some('"') => self.quoted('"'),
            _ => match self.match_word(is_second_follow) {
                Some(text) => Ok(Value::Str(
                    text.replace("\\,", ",")
                        .trim_end_matches(is_py_whitespace)
                        .to_owned(),
                )),
                None => Err(self.syntax_error("<second>", "<none>")),
            },
        }
    }

    /// `'(?:\\'|[^'])*'` (or the `"` form), then `\'` → `'` and `\\` → `\`.
    fn quoted(&mut self, quote: char) -> Result<Value, ShorthandError> {
        let start = self.index;
        let mut i = start + 1;
        loop {
            match self.chars.get(i) {
                None => {
                    let name = if quote == '\'' {
                        "singled quoted"
                    } else {
                        "double quoted"
                    };
                    return Err(self.syntax_error(&format!("<{name}>"), "<none>"));
                }
                Some('\\') if self.chars.get(i + 1) == Some(&quote) => i += 2,
                Some(&c) if c == quote => break,
                Some(_) => i += 1,
            }
        }
        self.index = i + 1;
        let inner: String = self.chars[start + 1..i].iter().collect();
        let inner = inner
            .replace(&format!("\\{quote}"), &quote.to_string())
            .replace("\\\\", "\\");
        Ok(Value::Str(inner))
    }
}

/// awscli `BackCompatVisitor`: wraps single values given for lists, converts integers, floats and booleans.
pub(crate) fn back_compat(
    service: &Service,
    shape_name: &str,
    value: &mut Value,
) -> Result<(), ShorthandError> {
    let shape = service.shape(shape_name);
    match shape.type_name.as_str() {
        "structure" => {
            if let Value::Map(pairs) = value {
                for (member, member_shape) in &shape.members {
                    if let Some((_, v)) = pairs.iter_mut().find(|(k, _)| k == member) {
                        visit_member(service, member_shape, v)?;
                    }
                }
            }
        }
        "list" => {
            if let (Value::List(items), Some(member)) = (value, &shape.member) {
                for item in items {
                    visit_member(service, member, item)?;
                }
            }
        }
        "map" => {
            if let (Value::Map(pairs), Some(value_shape)) = (value, &shape.value) {
                for (_, v) in pairs {
                    visit_member(service, value_shape, v)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn visit_member(
    service: &Service,
    shape_name: &str,
    value: &mut Value,
) -> Result<(), ShorthandError> {
    let shape = service.shape(shape_name);
    match shape.type_name.as_str() {
        "list" if !matches!(value, Value::List(_)) => {
            *value = Value::List(vec![value.clone()]);
            Ok(())
        }
        "structure" | "list" | "map" => back_compat(service, shape_name, value),
        "integer" | "long" => {
            if let Value::Str(s) = value {
                let parsed: i64 = s.trim().parse().map_err(|_| {
                    ShorthandError(format!("invalid literal for int() with base 10: '{s}'"))
                })?;
                *value = Value::Int(parsed);
            }
            Ok(())
        }
        "double" | "float" => {
            if let Value::Str(s) = value {
                let parsed: f64 = s.trim().parse().map_err(|_| {
                    ShorthandError(format!("could not convert string to float: '{s}'"))
                })?;
                *value = Value::Float(parsed);
            }
            Ok(())
        }
        "boolean" => {
            if let Value::Str(s) = value {
                if s.eq_ignore_ascii_case("true") {
                    *value = Value::Bool(true);
                } else if s.eq_ignore_ascii_case("false") {
                    *value = Value::Bool(false);
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::value::to_json_compact;

    fn json(input: &str) -> String {
        to_json_compact(&parse(input).unwrap())
    }

    #[test]
    fn parses_like_awscli() {
        assert_eq!(
            json("FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={StartTimestamp=2024-01-01T00:00:00Z,EndTimestamp=1704067300}"),
            r#"{"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": {"StartTimestamp": "2024-01-01T00:00:00Z", "EndTimestamp": "1704067300"}}"#
        );
        assert_eq!(json("a=b,c=d"), r#"{"a": "b", "c": "d"}"#);
        assert_eq!(json("a=b,c,d=e"), r#"{"a": ["b", "c"], "d": "e"}"#);
        assert_eq!(json("a=[1,2],b='x,y'"), r#"{"a": ["1", "2"], "b": "x,y"}"#);
        assert_eq!(json(r#"a=x\,y , b = "q""#), r#"{"a": "x,y", "b": "q"}"#);
        assert_eq!(json("a="), r#"{"a": ""}"#);
    }

    #[test]
    fn errors_like_awscli() {
        assert_eq!(
            parse("a").unwrap_err().0,
            "Expected: '=', received: 'EOF' for input:\na\n ^"
        );
        assert_eq!(
            parse("a=b,a=c").unwrap_err().0,
            "Second instance of key \"a\" encountered for input:\na=b,a=c\n    ^\nThis is often because there is a \
             preceding \",\" instead of a space."
        );
    }

    /// `a=[[[[…` 100 000 deep overflowed the stack (and aborted the CLI); awscli reports Python's recursion limit.
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for open in ["[", "{a="] {
            let deep = format!("a={}", open.repeat(100_000));
            assert_eq!(
                parse(&deep).unwrap_err().0,
                "maximum recursion depth exceeded",
                "{open}"
            );
        }
        let (open, close) = ("[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(
            json(&format!("a={open}x{close}")),
            format!("{{\"a\": {open}\"x\"{close}}}")
        );
    }
}
