//! LEB128 varints, as protobuf and moonfire's sample index write them: seven bits per byte, least significant
//! group first, the high bit set on every byte but the last; signed values zigzag-mapped first
//! (0, -1, 1, -2, … → 0, 1, 2, 3, …) so small magnitudes stay short.
//!
//! The one codec behind the catalog's sample tables (`sample_table.rs`) and the server's sealed HLS
//! session tokens. (EBML's VINT in `media::ebml` is another thing: a length marker in the first byte,
//! big-endian, with a reserved all-ones "unknown size"; Matroska fixes that form and these stored formats
//! fix this one.)

/// Why [`read_u64`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended inside a varint.
    Truncated,
    /// More than 64 bits: an eleventh byte, or a tenth with more than the one bit left.
    TooLong,
}

/// Appends `value`.
pub fn put_u64(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends `value` zigzag-mapped.
pub fn put_i64(out: &mut Vec<u8>, value: i64) {
    put_u64(out, zigzag(value));
}

/// 0, -1, 1, -2, … → 0, 1, 2, 3, …
pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Reads the varint at the start of `buf`: its value and how many bytes it took.
pub fn read_u64(buf: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut value = 0u64;
    for (index, &byte) in buf.iter().enumerate() {
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * index;
        if shift > 63 || (shift == 63 && bits > 1) {
            return Err(VarintError::TooLong);
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok((value, index + 1));
        }
    }
    Err(VarintError::Truncated)
}

/// Reads a zigzag-mapped varint at the start of `buf`: its value and how many bytes it took.
pub fn read_i64(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    read_u64(buf).map(|(value, len)| (unzigzag(value), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        for (value, bytes) in [
            (0u64, &[0x00][..]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            put_u64(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(read_u64(bytes), Ok((value, bytes.len())), "{value}");
        }
        for (value, mapped) in [
            (0i64, 0u64),
            (-1, 1),
            (1, 2),
            (-2, 3),
            (i64::MAX, u64::MAX - 1),
        ] {
            assert_eq!(zigzag(value), mapped);
            assert_eq!(unzigzag(mapped), value);
        }
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn signed_round_trip() {
        for value in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            i64::MIN,
            i64::MAX,
            -1_704_067_200_000,
        ] {
            let mut out = vec![0xaa];
            put_i64(&mut out, value);
            assert_eq!(read_i64(&out[1..]), Ok((value, out.len() - 1)));
        }
    }

    #[test]
    fn bad_input() {
        assert_eq!(read_u64(&[]), Err(VarintError::Truncated));
        assert_eq!(read_u64(&[0x80, 0x80]), Err(VarintError::Truncated));
        // A tenth byte may carry one bit only.
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(read_u64(&over), Err(VarintError::TooLong));
        assert_eq!(read_u64(&[0x80; 11]), Err(VarintError::TooLong));
        // Trailing bytes are the caller's.
        assert_eq!(read_u64(&[0x05, 0xff]), Ok((5, 1)));
    }
}
