//! The `--query` JMESPath compiler and evaluator, and the order-preserving JSON parser they read
//! (`openkvs::client::{jmespath, value}`).
//!
//! 1. Any expression compiles or fails without panicking; one that compiles is evaluated against a
//!    ListFragments-like document and against the fuzzer's own JSON document (when it parses).
//! 2. Round trip: a JSON document that parses prints (compact) and parses back to the same value.
//! 3. Deep: a prefix (`(`, `!`, `[`, `{"a":`, …) or an infix (`.`, `|`, `||`, `[0]`, …) repeated up to 30 000
//!    times (libFuzzer's inputs grow too slowly to get there), as an expression and as JSON: an error or a
//!    value, not a stack overflow.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use openkvs::client::jmespath;
use openkvs::client::value::{parse_json, to_json_compact, Value};

#[derive(arbitrary::Arbitrary, Debug)]
enum Input {
    Text {
        expression: String,
        document: String,
    },
    Deep {
        piece: u8,
        depth: u16,
        tail: String,
    },
}

/// Pieces repeated by `Input::Deep`: prefixes nest, infixes chain.
const PREFIXES: &[&str] = &["(", "!", "[", "{a: ", "[?", "&", "a[", "`[", "`{\"a\": "];
const INFIXES: &[&str] = &[
    ".a", " | a", " || a", " && a", "[0]", "[*].a", "[]", " == a", "[?a]",
];

const SAMPLE: &str = r#"{"Fragments": [
  {"FragmentNumber": "91343852333181432392682062607743920146264440941", "FragmentSizeInBytes": 788604,
   "ProducerTimestamp": 1643353235.931, "ServerTimestamp": 1643353247.067, "FragmentLengthInMilliseconds": 1796},
  {"FragmentNumber": "91343852333181432397633822764885441725874549018", "FragmentSizeInBytes": 50,
   "ProducerTimestamp": 1643353237.727, "ServerTimestamp": 1643353248.854, "FragmentLengthInMilliseconds": 0,
   "Tags": {"a": [1, 2.5, null, true, "x"], "b": {}}}],
 "NextToken": null, "Empty": [], "Nested": [[1, [2, 3]], [4]]}"#;

/// NaN never equals itself, so documents holding one cannot be compared after a round trip.
fn has_nan(value: &Value) -> bool {
    match value {
        Value::Float(f) => f.is_nan(),
        Value::List(items) => items.iter().any(has_nan),
        Value::Map(pairs) => pairs.iter().any(|(_, v)| has_nan(v)),
        _ => false,
    }
}

fuzz_target!(|input: Input| match input {
    Input::Text {
        expression,
        document,
    } => text(&expression, &document),
    Input::Deep { piece, depth, tail } => {
        let depth = usize::from(depth % 30_000);
        let piece = usize::from(piece);
        let expression = if piece % 2 == 0 {
            format!(
                "{}{tail}",
                PREFIXES[piece / 2 % PREFIXES.len()].repeat(depth)
            )
        } else {
            format!(
                "a{}{tail}",
                INFIXES[piece / 2 % INFIXES.len()].repeat(depth)
            )
        };
        let document = format!("{}{tail}", ["[", "{\"a\": "][piece % 2].repeat(depth));
        text(&expression, &document);
    }
});

fn text(expression: &str, document_text: &str) {
    let document = parse_json(document_text).ok();
    if let Some(value) = &document {
        let printed = to_json_compact(value);
        match parse_json(&printed) {
            Ok(again) => assert!(has_nan(value) || again == *value, "{printed}"),
            Err(e) => panic!("{printed:?} (printed from {document_text:?}) does not parse: {e}"),
        }
    }
    let Ok(node) = jmespath::compile(expression) else {
        return;
    };
    let sample = parse_json(SAMPLE).expect("the sample document parses");
    let _ = jmespath::search(&node, &sample);
    if let Some(value) = &document {
        let _ = jmespath::search(&node, value);
    }
}
