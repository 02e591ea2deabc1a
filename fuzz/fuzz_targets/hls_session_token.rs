//! The HLS `SessionToken` (`server::hls::token`: base64url of a sealed `server::hls::Session`).
//!
//! 1. Any token text opens or is refused without panicking (at any time, with two keys configured); a token
//!    that opens has a session id.
//! 2. Any plaintext decodes as a session or is refused without panicking; a session that decodes encodes to
//!    a plaintext that decodes to the same session, and seals to a token that opens to it before it expires.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use server::hls::token::{self, SessionKey, TokenError, MAX_TOKEN_LEN};
use server::hls::Session;
use store::Timestamp;

#[derive(arbitrary::Arbitrary, Debug)]
enum Input {
    Token { token: String, now_ms: i64 },
    Plaintext(Vec<u8>),
}

const KEYS: [SessionKey; 2] = [[7u8; 32], [9u8; 32]];

fuzz_target!(|input: Input| match input {
    Input::Token { token, now_ms } => {
        let opened = token::open(&token, &KEYS, Timestamp(now_ms));
        if opened.is_ok() {
            assert!(token::session_id(&token).is_some(), "{token}");
        }
    }
    Input::Plaintext(bytes) => {
        let Ok(session) = Session::decode(&bytes) else {
            return;
        };
        let encoded = session.encode();
        assert_eq!(Session::decode(&encoded).as_ref(), Ok(&session));
        let token = token::seal(&session, &KEYS[1]);
        let before_expiry = Timestamp(session.expires.0.saturating_sub(1));
        let opened = token::open(&token, &KEYS, before_expiry);
        if token.len() > MAX_TOKEN_LEN {
            assert_eq!(opened, Err(TokenError::Malformed));
        } else if session.expires.0 == i64::MIN {
            assert_eq!(opened, Err(TokenError::Expired));
        } else {
            assert_eq!(opened, Ok(session));
        }
    }
});
