//! Output formats, ported from awscli `formatter.py`, `text.py` and `table.py` (json, text, table) and from
//! AWS CLI v2 (yaml, yaml-stream).

use super::value::{to_json_pretty, Value};
use super::yaml::to_yaml;

/// `json`: `json.dumps(indent=4, ensure_ascii=False)` + newline; nothing at all for `{}`.
pub(crate) fn json(value: &Value) -> String {
    if *value == Value::Map(Vec::new()) {
        return String::new();
    }
    format!("{}\n", to_json_pretty(value))
}

/// `yaml`: nothing for `{}` (as json), else the document.
pub(crate) fn yaml(value: &Value) -> String {
    if *value == Value::Map(Vec::new()) {
        return String::new();
    }
    to_yaml(value)
}

/// `yaml-stream`: each page is one item of a top-level sequence.
pub(crate) fn yaml_stream_page(value: &Value) -> String {
    to_yaml(&Value::List(vec![value.clone()]))
}

/// `text` (awscli `text.format_text`).
pub(crate) fn text(value: &Value) -> String {
    let mut out = String::new();
    format_text(value, &mut out, None, None);
    out
}

fn format_text(
    item: &Value,
    out: &mut String,
    identifier: Option<&str>,
    scalar_keys: Option<&[String]>,
) {
    match item {
        Value::Map(_) => format_dict(scalar_keys, item, identifier, out),
        Value::List(items) => format_list(items, identifier, out),
        scalar => {
            out.push_str(&scalar.py_str());
            out.push('\n');
        }
    }
}

fn format_list(items: &[Value], identifier: Option<&str>, out: &mut String) {
    if items.is_empty() {
        return;
    }
    if items.iter().any(|e| matches!(e, Value::Map(_))) {
        let all_keys = all_scalar_keys(items);
        for element in items {
            format_text(element, out, identifier, Some(&all_keys));
        }
    } else if items.iter().any(|e| matches!(e, Value::List(_))) {
        let (scalars, non_scalars): (Vec<&Value>, Vec<&Value>) =
            items.iter().partition(|e| e.is_scalar());
        if !scalars.is_empty() {
            format_scalar_list(&scalars, identifier, out);
        }
        for non_scalar in non_scalars {
            format_text(non_scalar, out, identifier, None);
        }
    } else {
        let refs: Vec<&Value> = items.iter().collect();
        format_scalar_list(&refs, identifier, out);
    }
}

fn format_scalar_list(elements: &[&Value], identifier: Option<&str>, out: &mut String) {
    match identifier {
        Some(id) => {
            for item in elements {
                out.push_str(&format!("{}\t{}\n", id.to_uppercase(), item.py_str()));
            }
        }
        None => {
            let parts: Vec<String> = elements.iter().map(|v| v.py_str()).collect();
            out.push_str(&parts.join("\t"));
            out.push('\n');
        }
    }
}

fn format_dict(
    scalar_keys: Option<&[String]>,
    item: &Value,
    identifier: Option<&str>,
    out: &mut String,
) {
    let Value::Map(pairs) = item else { return };
    let mut scalars: Vec<String> = Vec::new();
    let mut non_scalars: Vec<(&str, &Value)> = Vec::new();
    match scalar_keys {
        None => {
            let mut sorted: Vec<&(String, Value)> = pairs.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in sorted {
                if v.is_scalar() {
                    scalars.push(v.py_str());
                } else {
                    non_scalars.push((k, v));
                }
            }
        }
        Some(keys) => {
            for k in keys {
                scalars.push(item.get(k).map(Value::py_str).unwrap_or_default());
            }
            let mut remaining: Vec<&(String, Value)> =
                pairs.iter().filter(|(k, _)| !keys.contains(k)).collect();
            remaining.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in remaining {
                non_scalars.push((k, v));
            }
        }
    }
    if !scalars.is_empty() {
        if let Some(id) = identifier {
            scalars.insert(0, id.to_uppercase());
        }
        out.push_str(&scalars.join("\t"));
        out.push('\n');
    }
    for (key, value) in non_scalars {
        format_text(value, out, Some(key), None);
    }
}

fn all_scalar_keys(items: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for item in items {
        if let Value::Map(pairs) = item {
            for (k, v) in pairs {
                if v.is_scalar() && !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    keys.sort();
    keys
}

// ---- table -------------------------------------------------------------------------------------------------

const BRIGHT_BLUE: &str = "\x1b[1m\x1b[34m";
const DIM_YELLOW: &str = "\x1b[2m\x1b[33m";
const RESET: &str = "\x1b[0m";

#[derive(Debug, Default, Clone)]
struct Section {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    indent_level: usize,
    max_widths: Vec<usize>,
}

/// Python `len()` with East Asian wide/fullwidth/ambiguous characters counted twice (awscli `get_text_length`).
fn text_length(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            let wide = (0x1100..=0x115f).contains(&u)
                || (0x2e80..=0xa4cf).contains(&u)
                || (0xac00..=0xd7a3).contains(&u)
                || (0xf900..=0xfaff).contains(&u)
                || (0xfe30..=0xfe4f).contains(&u)
                || (0xff00..=0xff60).contains(&u)
                || (0xffe0..=0xffe6).contains(&u)
                || (0x20000..=0x3fffd).contains(&u);
            if wide {
                2
            } else {
                1
            }
        })
        .sum()
}

/// Python's `round()` (half to even), as `int(round(x))`.
fn round_half_even(x: f64) -> i64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        let t = x.trunc();
        if (t as i64) % 2 == 0 {
            t as i64
        } else {
            r as i64
        }
    } else {
        r as i64
    }
}

impl Section {
    fn update_max_widths(&mut self, row: &[String]) {
        if self.max_widths.is_empty() {
            self.max_widths = row.iter().map(|e| text_length(e)).collect();
        } else {
            for (i, e) in row.iter().enumerate() {
                if i < self.max_widths.len() {
                    self.max_widths[i] = self.max_widths[i].max(text_length(e));
                }
            }
        }
    }

    fn add_header(&mut self, headers: Vec<String>) {
        self.update_max_widths(&headers);
        self.headers = headers;
    }

    fn add_row(&mut self, row: Vec<String>) {
        self.update_max_widths(&row);
        self.rows.push(row);
    }

    fn column_widths(&self, padding: usize, max_width: Option<usize>) -> Vec<usize> {
        let unscaled: Vec<usize> = self.max_widths.iter().map(|w| w + padding).collect();
        let Some(max_width) = max_width else {
            return unscaled;
        };
        if unscaled.is_empty() {
            return unscaled;
        }
        let scale = max_width as f64 / unscaled.iter().sum::<usize>() as f64;
        let mut scaled: Vec<i64> = unscaled
            .iter()
            .map(|w| round_half_even(scale * *w as f64))
            .collect();
        let mut off_by = scaled.iter().sum::<i64>() - max_width as i64;
        while off_by != 0 {
            let order: Vec<usize> = if off_by < 0 {
                (0..scaled.len()).rev().collect()
            } else {
                (0..scaled.len()).collect()
            };
            for i in order {
                if off_by > 0 {
                    scaled[i] -= 1;
                    off_by -= 1;
                } else {
                    scaled[i] += 1;
                    off_by += 1;
                }
                if off_by == 0 {
                    break;
                }
            }
        }
        scaled.into_iter().map(|w| w.max(0) as usize).collect()
    }

    fn total_width(&self, padding: usize, outer_padding: usize) -> usize {
        let total: usize = self
            .column_widths(0, None)
            .iter()
            .map(|w| w + padding)
            .sum::<usize>()
            + 2
            + 2 * outer_padding;
        total.max(text_length(&self.title) + 2 + 2 * outer_padding)
    }
}

fn center_text(text: &str, length: usize, left: &str, right: &str, text_len: usize) -> String {
    let char_start = (length / 2) as i64 - (text_len / 2) as i64 - 1;
    let mut out = format!("{left}{}{text}", " ".repeat(char_start.max(0) as usize));
    let so_far = text_length(left) as i64 + char_start + text_len as i64;
    let right_spaces = length as i64 - text_length(right) as i64 - so_far;
    out.push_str(&" ".repeat(right_spaces.max(0) as usize));
    out.push_str(right);
    out
}

fn align_left(text: &str, length: usize, left: &str, right: &str, text_len: usize) -> String {
    let computed = text_len + 2 + left.len() + right.len();
    let padding = if length >= computed { 2 } else { 0 };
    let so_far = left.len() + padding + text_len;
    let fill = (length as i64 - so_far as i64 - right.len() as i64).max(0) as usize;
    format!(
        "{left}{}{text}{}{right}",
        " ".repeat(padding),
        " ".repeat(fill)
    )
}

struct Table {
    sections: Vec<Section>,
    color: bool,
    terminal_width: usize,
}

impl Table {
    fn current(&mut self) -> &mut Section {
        if self.sections.is_empty() {
            self.sections.push(Section::default());
        }
        let last = self.sections.len() - 1;
        &mut self.sections[last]
    }

    fn new_section(&mut self, title: &str, indent_level: usize) {
        self.sections.push(Section {
            title: title.to_owned(),
            indent_level,
            ..Section::default()
        });
    }

    fn build(&mut self, title: Option<&str>, current: &Value, indent_level: usize) -> bool {
        if !current.is_truthy() {
            return false;
        }
        if let Some(t) = title {
            self.new_section(t, indent_level);
        }
        match current {
            Value::List(items) => {
                if matches!(items[0], Value::Map(_)) {
                    self.sub_table_from_list(items, indent_level, title.unwrap_or(""));
                } else {
                    for item in items {
                        match item {
                            s if s.is_scalar() => self.current().add_row(vec![s.py_str()]),
                            Value::List(inner) if inner.iter().all(Value::is_scalar) => self
                                .current()
                                .add_row(inner.iter().map(Value::py_str).collect()),
                            Value::Map(pairs) if pairs.iter().all(|(_, v)| v.is_scalar()) => self
                                .current()
                                .add_row(pairs.iter().map(|(k, _)| k.clone()).collect()),
                            other => {
                                self.build(None, other, 0);
                            }
                        }
                    }
                }
            }
            Value::Map(_) => self.sub_table_from_dict(current, indent_level),
            _ => {}
        }
        true
    }

    fn group_scalar_keys(current: &Value) -> (Vec<String>, Vec<String>) {
        let mut headers = Vec::new();
        let mut more = Vec::new();
        if let Value::Map(pairs) = current {
            for (k, v) in pairs {
                if v.is_scalar() {
                    headers.push(k.clone());
                } else {
                    more.push(k.clone());
                }
            }
        }
        headers.sort();
        more.sort();
        (headers, more)
    }

    fn sub_table_from_dict(&mut self, current: &Value, indent_level: usize) {
        let (headers, more) = Self::group_scalar_keys(current);
        let get = |k: &str| current.get(k).map(Value::py_str).unwrap_or_default();
        if headers.len() == 1 {
            let row = vec![headers[0].clone(), get(&headers[0])];
            self.current().add_row(row);
        } else if !headers.is_empty() {
            let row: Vec<String> = headers.iter().map(|k| get(k)).collect();
            self.current().add_header(headers);
            self.current().add_row(row);
        }
        for remaining in more {
            if let Some(v) = current.get(&remaining) {
                let v = v.clone();
                self.build(Some(&remaining), &v, indent_level + 1);
            }
        }
    }

    fn sub_table_from_list(&mut self, items: &[Value], indent_level: usize, title: &str) {
        let mut headers: Vec<String> = Vec::new();
        let mut more: Vec<String> = Vec::new();
        for item in items {
            let (h, m) = Self::group_scalar_keys(item);
            for k in h {
                if !headers.contains(&k) {
                    headers.push(k);
                }
            }
            for k in m {
                if !more.contains(&k) {
                    more.push(k);
                }
            }
        }
        headers.sort();
        more.sort();
        self.current().add_header(headers.clone());
        let mut first = true;
        for element in items {
            if !first && !more.is_empty() {
                self.new_section(title, indent_level);
                self.current().add_header(headers.clone());
            }
            first = false;
            let row: Vec<String> = headers
                .iter()
                .map(|h| element.get(h).map(Value::py_str).unwrap_or_default())
                .collect();
            self.current().add_row(row);
            for remaining in &more {
                if let Some(v) = element.get(remaining) {
                    self.build(Some(remaining), v, indent_level + 1);
                }
            }
        }
    }

    fn max_width(&self) -> usize {
        self.sections
            .iter()
            .map(|s| s.total_width(4, s.indent_level))
            .max()
            .unwrap_or(0)
    }

    fn render(&mut self) -> String {
        let mut max_width = self.max_width();
        if max_width > self.terminal_width {
            for section in &mut self.sections {
                if section.rows.len() == 1 && !section.headers.is_empty() {
                    let mut vertical = Section {
                        title: section.title.clone(),
                        indent_level: section.indent_level,
                        ..Section::default()
                    };
                    let headers = section.headers.clone();
                    let row = section.rows[0].clone();
                    for (h, e) in headers.into_iter().zip(row) {
                        vertical.add_row(vec![h, e]);
                    }
                    *section = vertical;
                }
            }
            max_width = self.max_width();
        }
        let mut out = format!("{}\n", "-".repeat(max_width));
        for section in &self.sections {
            self.render_section(section, max_width, &mut out);
        }
        out
    }

    fn indent_char(&self) -> String {
        if self.color {
            format!("{DIM_YELLOW}|{RESET}")
        } else {
            "|".to_owned()
        }
    }

    /// One line through awscli's `IndentedStream` (indent chars on both sides).
    fn write_line(&self, out: &mut String, level: usize, line: &str) {
        let c = self.indent_char();
        out.push_str(&c.repeat(level));
        out.push_str(line);
        out.push_str(&c.repeat(level));
        out.push('\n');
    }

    fn line_break(widths: &[usize]) -> String {
        let mut s = String::new();
        for (i, w) in widths.iter().enumerate() {
            if i == 0 {
                s.push_str(&format!("+{}+", "-".repeat(w.saturating_sub(2))));
            } else {
                s.push_str(&format!("{}+", "-".repeat(w.saturating_sub(1))));
            }
        }
        s
    }

    fn render_section(&self, section: &Section, max_width: usize, out: &mut String) {
        let level = section.indent_level;
        let width = max_width.saturating_sub(level * 2);
        if !section.title.is_empty() {
            let len = text_length(&section.title);
            self.write_line(
                out,
                level,
                &center_text(&section.title, width, "|", "|", len),
            );
            if section.headers.is_empty() && section.rows.is_empty() {
                self.write_line(
                    out,
                    level,
                    &format!("+{}+", "-".repeat(width.saturating_sub(2))),
                );
            }
        }
        if !section.headers.is_empty() {
            let widths = section.column_widths(4, Some(width));
            let mut line = String::new();
            for (i, (w, h)) in widths.iter().zip(&section.headers).enumerate() {
                let left = if i == 0 { "|" } else { "" };
                line.push_str(&center_text(h, *w, left, "|", text_length(h)));
            }
            self.write_line(out, level, &Self::line_break(&widths));
            self.write_line(out, level, &line);
        }
        if !section.rows.is_empty() {
            let widths = section.column_widths(4, Some(width));
            if widths.is_empty() {
                return;
            }
            self.write_line(out, level, &Self::line_break(&widths));
            for row in &section.rows {
                let mut line = String::new();
                for (i, (w, e)) in widths.iter().zip(row).enumerate() {
                    let left = if i == 0 { "|" } else { "" };
                    let styled = if self.color {
                        format!("{BRIGHT_BLUE}{e}{RESET}")
                    } else {
                        e.clone()
                    };
                    line.push_str(&align_left(&styled, *w, left, "|", text_length(e)));
                }
                self.write_line(out, level, &line);
            }
            self.write_line(out, level, &Self::line_break(&widths));
        }
    }
}

/// `table` (awscli `TableFormatter` with `MultiTable(initial_section=False)`); the title is the operation name.
pub(crate) fn table(title: &str, value: &Value, color: bool, terminal_width: usize) -> String {
    let mut t = Table {
        sections: Vec::new(),
        color,
        terminal_width,
    };
    if t.build(Some(title), value, 0) {
        t.render()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::value::parse_json;

    #[test]
    fn text_like_awscli() {
        let v = parse_json(r#"{"StreamInfo": {"StreamName": "s1", "DataRetentionInHours": 24, "CreationTime": 1.5}}"#).unwrap();
        assert_eq!(text(&v), "STREAMINFO\t1.5\t24\ts1\n");
        let v = parse_json(r#"{"Tags": {"a": "b", "c": "d"}}"#).unwrap();
        assert_eq!(text(&v), "TAGS\tb\td\n");
        let v = parse_json(r#"["x", "y"]"#).unwrap();
        assert_eq!(text(&v), "x\ty\n");
    }

    #[test]
    fn table_like_awscli() {
        let v = parse_json(r#"{"Fragments": []}"#).unwrap();
        assert_eq!(
            table("ListFragments", &v, false, 80),
            "---------------\n|ListFragments|\n+-------------+\n"
        );
        let v = parse_json(r#"{"Tags": {"a": "b", "c": "d"}}"#).unwrap();
        assert_eq!(
            table("ListTagsForStream", &v, false, 80),
            "-------------------\n|ListTagsForStream|\n+-----------------+\n||     Tags      ||\n|+------+--------+|\n||   a  |   c    ||\n|+------+--------+|\n||  b   |  d     ||\n|+------+--------+|\n"
        );
    }
}
