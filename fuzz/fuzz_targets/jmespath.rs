//! The `--query` JMESPath compiler and evaluator, and the order-preserving JSON parser they read
//! (`openkvs::client::{jmespath, value}`).
//!
//! 1. Any expression compiles or fails without panicking; one that compiles is evaluated against a
//!    ListFragments-like document and against the fuzzer's own JSON document (when it parses).
//! 2. Round trip: a JSON document that parses prints (compact) and parses back to the same value.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use openkvs::client::jmespath;
use openkvs::client::value::{parse_json, to_json_compact, Value};

#[derive(arbitrary::Arbitrary, Debug)]
struct Input {
    expression: String,
    document: String,
}

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

fuzz_target!(|input: Input| {
    let document = parse_json(&input.document).ok();
    if let Some(value) = &document {
        let text = to_json_compact(value);
        match parse_json(&text) {
            Ok(again) => assert!(has_nan(value) || again == *value, "{text}"),
            Err(e) => panic!(
                "{text:?} (printed from {:?}) does not parse: {e}",
                input.document
            ),
        }
    }
    let Ok(node) = jmespath::compile(&input.expression) else {
        return;
    };
    let sample = parse_json(SAMPLE).expect("the sample document parses");
    let _ = jmespath::search(&node, &sample);
    if let Some(value) = &document {
        let _ = jmespath::search(&node, value);
    }
});
