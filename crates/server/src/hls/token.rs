//! The `SessionToken`: a [`Session`] sealed with ChaCha20-Poly1305 (docs/choices.md#session-tokens).
//!
//! Stateless: any node holding the key opens it; nothing is stored per session.
//!
//! ```text
//! token = base64url_nopad( version(1) | key_id(2) | nonce(12) | ciphertext(session) | tag(16) ) "~"
//! ```
//! - `version` (1 today) fixes this layout and the session encoding ([`Session::encode`]).
//! - `key_id` names the sealing key without revealing it: the first two bytes of
//!   SHA-256("openkvs session key id\0" | key). Ids come from the key, not its place in the list,
//!   so an operator may add a key in front (it seals from then on) and remove old ones later:
//!   every configured key opens. Keys whose ids collide are all tried.
//! - `nonce`: 96 random bits from the OS for every token. With random nonces one key may seal
//!   about 2^32 tokens before nonce reuse becomes a concern (NIST SP 800-38D's bound); at
//!   GetHLSStreamingSessionURL's 25 TPS per stream that is years per stream; rotate keys before.
//! - version and key id are the AEAD's associated data, so they cannot be swapped either.
//!
//! Why ChaCha20-Poly1305 rather than AES-256-GCM: both are fine AEADs with the same 96-bit nonce
//! and 16-byte tag (so tokens are the same size); ChaCha20 is constant-time in plain software,
//! so openkvs on ARM boards or CPUs without AES instructions neither slows down nor leaks timing,
//! and at ~60-byte tokens AES-NI's speed-up does not matter. The RustCrypto crate is pure Rust.
//!
//! A typical token is about 100 characters (docs/choices.md#session-tokens: base64url, ends with `~`; AWS's
//! are 130-150). Tokens are bearer credentials: never log them (the request log prints paths only).

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use store::Timestamp;

use super::session::Session;

/// Token format version.
pub const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 2 + 12;
const TAG_LEN: usize = 16;
/// Longest token accepted before decoding (a 256-character stream name gives ~460).
pub const MAX_TOKEN_LEN: usize = 1024;

/// A 256-bit session key.
pub type SessionKey = [u8; 32];

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format at all (alphabet, length, `~`, version, or a plaintext that
    /// does not decode).
    #[error("malformed session token")]
    Malformed,
    /// Sealed with a key this server does not have (rotated out, or another deployment's).
    #[error("session token sealed with an unknown key")]
    UnknownKey,
    /// Authentication failed: some byte was changed.
    #[error("session token failed authentication")]
    Tampered,
    /// Authentic, but its session has expired.
    #[error("session token expired")]
    Expired,
}

/// The key id of `key` (see the module doc).
pub fn key_id(key: &SessionKey) -> [u8; 2] {
    let digest = Sha256::new()
        .chain_update(b"openkvs session key id\0")
        .chain_update(key)
        .finalize();
    [digest[0], digest[1]]
}

/// Seals `session` with `key` (the first configured key).
pub fn seal(session: &Session, key: &SessionKey) -> String {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).expect("the OS random number generator works");
    seal_with_nonce(session, key, nonce)
}

fn seal_with_nonce(session: &Session, key: &SessionKey, nonce: [u8; 12]) -> String {
    let mut header = [0u8; HEADER_LEN];
    header[0] = VERSION;
    header[1..3].copy_from_slice(&key_id(key));
    header[3..].copy_from_slice(&nonce);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let plaintext = session.encode();
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad: &header[..3],
            },
        )
        .expect("ChaCha20-Poly1305 seals any message shorter than 256 GiB");
    let mut bytes = Vec::with_capacity(HEADER_LEN + sealed.len());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&sealed);
    let mut token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    token.push('~');
    token
}

fn decode_bytes(token: &str) -> Result<Vec<u8>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let body = token.strip_suffix('~').ok_or(TokenError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed)?;
    if bytes.len() < HEADER_LEN + TAG_LEN || bytes[0] != VERSION {
        return Err(TokenError::Malformed);
    }
    Ok(bytes)
}

/// Opens a token with any of `keys`, and refuses it once `now` reaches the session's expiry.
pub fn open(token: &str, keys: &[SessionKey], now: Timestamp) -> Result<Session, TokenError> {
    let session = open_unchecked(token, keys)?;
    if now >= session.expires {
        return Err(TokenError::Expired);
    }
    Ok(session)
}

/// [`open`] without the expiry check.
fn open_unchecked(token: &str, keys: &[SessionKey]) -> Result<Session, TokenError> {
    let bytes = decode_bytes(token)?;
    let (header, sealed) = bytes.split_at(HEADER_LEN);
    let nonce = Nonce::from_slice(&header[3..]);
    let mut known = false;
    for key in keys.iter().filter(|k| key_id(k) == header[1..3]) {
        known = true;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
        let Ok(plaintext) = cipher.decrypt(
            nonce,
            Payload {
                msg: sealed,
                aad: &header[..3],
            },
        ) else {
            continue;
        };
        return Session::decode(&plaintext).map_err(|_| TokenError::Malformed);
    }
    Err(if known {
        TokenError::Tampered
    } else {
        TokenError::UnknownKey
    })
}

/// Tokens recently opened, so a player's every request does not pay for base64, the key lookup
/// and the AEAD again. Opening is a pure function of the token and the configured keys (which do
/// not change while the server runs), so a cached result is the result; only expiry depends on
/// the time and is checked on every hit. Keyed by the whole token string: nothing unauthenticated
/// decides a hit. Bounded: when full it is emptied (the next requests just open their tokens).
#[derive(Default)]
pub struct OpenedTokens {
    opened: std::sync::Mutex<std::collections::HashMap<Box<str>, Arc<Opened>>>,
}

/// An opened token: its session and session id.
#[derive(Debug)]
pub struct Opened {
    pub session: Session,
    pub session_id: [u8; 12],
}

/// Most tokens kept (a few hundred bytes each).
pub const OPENED_TOKENS: usize = 4096;

impl OpenedTokens {
    /// [`open`] and [`session_id`] of `token`, from the cache when it was opened before.
    pub fn open(
        &self,
        token: &str,
        keys: &[SessionKey],
        now: Timestamp,
    ) -> Result<Arc<Opened>, TokenError> {
        let lock = || self.opened.lock().unwrap_or_else(|e| e.into_inner());
        let hit = lock().get(token).cloned();
        let opened = match hit {
            Some(opened) => opened,
            None => {
                let session = open_unchecked(token, keys)?;
                let session_id = session_id(token).ok_or(TokenError::Malformed)?;
                let opened = Arc::new(Opened {
                    session,
                    session_id,
                });
                let mut cache = lock();
                if cache.len() >= OPENED_TOKENS {
                    cache.clear();
                }
                cache.insert(token.into(), opened.clone());
                opened
            }
        };
        if now >= opened.session.expires {
            return Err(TokenError::Expired);
        }
        Ok(opened)
    }
}

/// A stable, non-secret identifier of the session a token carries (its nonce): the key of the
/// per-session rate limits. Meaningful only for a token that [`open`] accepted.
pub fn session_id(token: &str) -> Option<[u8; 12]> {
    let bytes = decode_bytes(token).ok()?;
    bytes[3..HEADER_LEN].try_into().ok()
}

// ------------------------------------------------------------------------------------------------
// Keys

/// Parses a key given as 64 hex digits or as base64 (standard or URL-safe, padding optional) of
/// 32 bytes. Surrounding whitespace is ignored.
pub fn parse_key(text: &str) -> Result<SessionKey, String> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|e| e.to_string())?
    } else {
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        engines
            .iter()
            .find_map(|e| e.decode(text).ok())
            .ok_or_else(|| "a session key must be 64 hex digits or base64 of 32 bytes".to_owned())?
    };
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("a session key must be 32 bytes, not {}", b.len()))
}

/// Parses a list of keys: one per line or separated by commas; `#` starts a comment line.
pub fn parse_keys(text: &str) -> Result<Vec<SessionKey>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(parse_key)
        .collect()
}

/// A fresh random key.
pub fn generate_key() -> SessionKey {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS random number generator works");
    key
}

/// Name of the generated key file inside the data directory.
pub const KEY_FILE: &str = "session.key";

/// Reads the key in `path`, or creates the file with a fresh key (64 hex digits and a newline),
/// owner-only (0600), if it does not exist. `create_new` makes concurrent starts agree on one key.
/// Keeps sessions valid across restarts.
pub fn load_or_create_key_file(path: &Path) -> std::io::Result<SessionKey> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let key = generate_key();
            file.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
            file.sync_all()?;
            if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
                let _ = dir.sync_all();
            }
            tracing::info!(path = %path.display(), "generated a new session key");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(e) => Err(e),
    }
}

fn read_key_file(path: &Path) -> std::io::Result<SessionKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777),
                "the session key file is readable by others; anyone who can read it can mint session URLs");
        }
    }
    let text = std::fs::read_to_string(path)?;
    parse_key(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::session::tests::sample;

    const KEY: SessionKey = [7u8; 32];

    fn before_expiry() -> Timestamp {
        Timestamp(sample().expires.0 - 1)
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let token = seal(&s, &KEY);
        assert!(token.ends_with('~'));
        let body = &token[..token.len() - 1];
        assert!(
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        assert!(token.len() < 130, "{} chars: {token}", token.len());
        assert_eq!(open(&token, &[KEY], before_expiry()), Ok(s));
    }

    /// The cache gives what `open` gives: the same session, expiry checked on every hit, and
    /// refusals (never cached) refused again; it stays bounded.
    #[test]
    fn opened_tokens_agree_with_open() {
        let cache = OpenedTokens::default();
        let s = sample();
        let token = seal(&s, &KEY);
        for _ in 0..3 {
            let opened = cache.open(&token, &[KEY], before_expiry()).unwrap();
            assert_eq!(opened.session, s);
            assert_eq!(Some(opened.session_id), session_id(&token));
        }
        assert_eq!(
            cache.open(&token, &[KEY], s.expires).unwrap_err(),
            TokenError::Expired
        );
        let mut tampered = token.clone().into_bytes();
        tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for _ in 0..2 {
            assert_eq!(
                cache.open(&tampered, &[KEY], before_expiry()).unwrap_err(),
                open(&tampered, &[KEY], before_expiry()).unwrap_err()
            );
        }
        assert_eq!(
            cache
                .open(&token, &[[8u8; 32]], before_expiry())
                .unwrap()
                .session,
            s,
            "a hit does not depend on the keys: they do not change while the server runs"
        );
        for _ in 0..OPENED_TOKENS + 10 {
            cache
                .open(&seal(&s, &KEY), &[KEY], before_expiry())
                .unwrap();
        }
        assert!(cache.opened.lock().unwrap().len() <= OPENED_TOKENS);
    }

    #[test]
    fn nonces_differ() {
        let s = sample();
        assert_ne!(seal(&s, &KEY), seal(&s, &KEY));
        assert_ne!(session_id(&seal(&s, &KEY)), session_id(&seal(&s, &KEY)));
    }

    #[test]
    fn any_single_bit_flip_is_refused() {
        let s = sample();
        let token = seal_with_nonce(&s, &KEY, [3; 12]);
        let bytes = decode_bytes(&token).unwrap();
        for i in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            let t = format!(
                "{}~",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&flipped)
            );
            let e = open(&t, &[KEY], before_expiry()).unwrap_err();
            let expected = match i / 8 {
                0 => TokenError::Malformed,
                1 | 2 => TokenError::UnknownKey,
                _ => TokenError::Tampered,
            };
            assert_eq!(e, expected, "bit {i}");
        }
    }

    #[test]
    fn wrong_key_is_unknown_and_rotation_works() {
        let s = sample();
        let old = [1u8; 32];
        let new = [2u8; 32];
        let token = seal(&s, &old);
        assert_eq!(
            open(&token, &[new], before_expiry()),
            Err(TokenError::UnknownKey)
        );
        // The new key seals, the old one still opens.
        assert_eq!(open(&token, &[new, old], before_expiry()), Ok(s.clone()));
        let fresh = seal(&s, &new);
        assert_eq!(open(&fresh, &[new, old], before_expiry()), Ok(s));
    }

    #[test]
    fn same_key_id_other_key_is_tampered() {
        // Find a key whose id collides with KEY's; rare, so build the error path directly.
        let s = sample();
        let token = seal(&s, &KEY);
        let mut bytes = decode_bytes(&token).unwrap();
        let other = [9u8; 32];
        bytes[1..3].copy_from_slice(&key_id(&other));
        let t = format!(
            "{}~",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
        );
        assert_eq!(
            open(&t, &[KEY, other], before_expiry()),
            Err(TokenError::Tampered)
        );
    }

    #[test]
    fn expiry() {
        let s = sample();
        let token = seal(&s, &KEY);
        assert!(open(&token, &[KEY], s.created).is_ok());
        assert!(open(&token, &[KEY], Timestamp(s.expires.0 - 1)).is_ok());
        assert_eq!(open(&token, &[KEY], s.expires), Err(TokenError::Expired));
        assert_eq!(
            open(&token, &[KEY], Timestamp(s.expires.0 + 3_600_000)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn malformed() {
        let token = seal(&sample(), &KEY);
        let now = before_expiry();
        for bad in [
            "",
            "~",
            "abc~",
            &token[..token.len() - 1],
            &format!("{}=~", &token[..token.len() - 1]),
            &format!("{}+~", &token[..token.len() - 2]),
            &"A".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(open(bad, &[KEY], now), Err(TokenError::Malformed), "{bad}");
        }
    }

    #[test]
    fn keys_parse() {
        let hex_key = "00".repeat(31) + "ff";
        assert_eq!(parse_key(&hex_key).unwrap()[31], 0xff);
        let b64 = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
        assert_eq!(parse_key(&b64).unwrap(), [5u8; 32]);
        assert_eq!(parse_key(b64.trim_end_matches('=')).unwrap(), [5u8; 32]);
        assert!(parse_key("abcd").is_err());
        assert!(parse_key(&"00".repeat(31)).is_err());
        let list = format!("# keys\n{hex_key}, {b64}\n\n");
        assert_eq!(parse_keys(&list).unwrap().len(), 2);
    }

    #[test]
    fn key_file_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let first = load_or_create_key_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = load_or_create_key_file(&path).unwrap();
        assert_eq!(first, again);
        // A token sealed before a "restart" opens after it.
        let token = seal(&sample(), &first);
        assert!(open(&token, &[again], before_expiry()).is_ok());
        // A damaged file is an error, not a silently new key.
        std::fs::write(&path, "garbage").unwrap();
        assert!(load_or_create_key_file(&path).is_err());
    }
}
