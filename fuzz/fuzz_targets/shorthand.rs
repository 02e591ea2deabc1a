//! The AWS CLI shorthand parser (`openkvs::client::shorthand`, a port of awscli's `ShorthandParser`).
//!
//! 1. Any text: no panic (a parse error is fine).
//! 2. Round trip: `key="value",…` with distinct keys from the key alphabet and values without `"` or `\`
//!    parses to exactly those pairs, in order.
//! 3. Deep: `a=` then `[` or `{a=` repeated up to 200 000 times (libFuzzer's inputs grow too slowly to get
//!    there): an error, not a stack overflow.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use openkvs::client::shorthand;
use openkvs::client::value::Value;

#[derive(arbitrary::Arbitrary, Debug)]
enum Input {
    Text(String),
    Pairs(Vec<(String, String)>),
    Deep {
        hash: bool,
        depth: u32,
        tail: String,
    },
}

fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.#/:".contains(c)
}

fuzz_target!(|input: Input| match input {
    Input::Text(text) => {
        let _ = shorthand::parse(&text);
    }
    Input::Deep { hash, depth, tail } => {
        let open = if hash { "{a=" } else { "[" };
        let text = format!("a={}{tail}", open.repeat((depth % 200_000) as usize));
        let _ = shorthand::parse(&text);
    }
    Input::Pairs(pairs) => {
        let mut want: Vec<(String, Value)> = Vec::new();
        for (key, value) in pairs {
            let key: String = key.chars().filter(|&c| key_char(c)).collect();
            let value: String = value.chars().filter(|&c| c != '"' && c != '\\').collect();
            if key.is_empty() || want.iter().any(|(k, _)| *k == key) {
                continue;
            }
            want.push((key, Value::Str(value)));
        }
        if want.is_empty() {
            return;
        }
        let text = want
            .iter()
            .map(|(k, v)| match v {
                Value::Str(s) => format!("{k}=\"{s}\""),
                _ => unreachable!(),
            })
            .collect::<Vec<_>>()
            .join(",");
        match shorthand::parse(&text) {
            Ok(parsed) => assert_eq!(parsed, Value::Map(want), "{text}"),
            Err(e) => panic!("{text:?} does not parse: {}", e.0),
        }
    }
});
