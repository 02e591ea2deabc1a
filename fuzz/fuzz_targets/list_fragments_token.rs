//! The ListFragments `NextToken` (`server::archived::FragmentCursor`: base64 of
//! `v1:<P|S>:<start ms>:<end ms>:<last ts ms>:<last number>`).
//!
//! 1. Any token decodes or is refused (InvalidArgumentException) without panicking; a token that decodes
//!    re-encodes to one that decodes to the same cursor.
//! 2. Round trip: any cursor encodes to a token that passes the model's pattern and decodes to it.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use server::archived::FragmentCursor;
use server::validate::ARCHIVED_NEXT_TOKEN;
use store::{FragmentNumber, Timestamp, TimestampKind};

#[derive(arbitrary::Arbitrary, Debug)]
enum Input {
    Token(String),
    Cursor {
        producer: bool,
        start_ms: i64,
        end_ms: i64,
        after_ms: i64,
        after_number: u128,
    },
}

fn round_trip(cursor: FragmentCursor) {
    let token = cursor.encode();
    assert!(ARCHIVED_NEXT_TOKEN.matches(&token), "{token}");
    match FragmentCursor::decode(&token) {
        Ok(again) => assert_eq!(again, cursor, "{token}"),
        Err(e) => panic!("{cursor:?} encodes to {token}, which does not decode: {e:?}"),
    }
}

fuzz_target!(|input: Input| match input {
    Input::Token(token) => match FragmentCursor::decode(&token) {
        Ok(cursor) => round_trip(cursor),
        Err(e) => assert_eq!(e.aws_error_type(), "InvalidArgumentException"),
    },
    Input::Cursor {
        producer,
        start_ms,
        end_ms,
        after_ms,
        after_number,
    } => round_trip(FragmentCursor {
        kind: if producer {
            TimestampKind::Producer
        } else {
            TimestampKind::Server
        },
        start: Timestamp(start_ms),
        end: Timestamp(end_ms),
        after: (Timestamp(after_ms), FragmentNumber(after_number)),
    }),
});
