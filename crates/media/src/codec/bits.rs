//! A bounds-checked MSB-first bit reader over RBSP bytes, with exp-Golomb codes
//! (ITU-T H.264 §9.1, H.265 §9.2), and emulation-prevention removal (H.264 §7.4.1).

use super::CodecError;

/// Removes emulation-prevention bytes: every `00 00 03` becomes `00 00` (H.264 §7.3.1, H.265 §7.3.1.1).
pub(crate) fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &byte in nal {
        if zeros >= 2 && byte == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

/// Reads big-endian fields from a byte slice (the configuration records).
pub(crate) struct ByteReader<'a> {
    data: &'a [u8],
    context: &'static str,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(data: &'a [u8], context: &'static str) -> Self {
        ByteReader { data, context }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.data.len() {
            return Err(CodecError::Truncated {
                context: self.context,
            });
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Reads bits from a byte slice, most significant bit first.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
    /// Names the structure being read, for errors.
    context: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], context: &'static str) -> Self {
        BitReader {
            data,
            pos: 0,
            context,
        }
    }

    /// Bits left.
    fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    fn truncated(&self) -> CodecError {
        CodecError::Truncated {
            context: self.context,
        }
    }

    /// One bit as a flag.
    pub(crate) fn flag(&mut self) -> Result<bool, CodecError> {
        Ok(self.bits(1)? == 1)
    }

    /// `n` ≤ 32 bits as an unsigned number (`u(n)`).
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, CodecError> {
        debug_assert!(n <= 32);
        if n as usize > self.remaining() {
            return Err(self.truncated());
        }
        let mut value: u64 = 0;
        for _ in 0..n {
            let byte = self.data[self.pos / 8];
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            value = (value << 1) | u64::from(bit);
            self.pos += 1;
        }
        // n ≤ 32, so value < 2^32.
        Ok(value as u32)
    }

    /// Skips `n` bits.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        if n > self.remaining() {
            return Err(self.truncated());
        }
        self.pos += n;
        Ok(())
    }

    /// `ue(v)`: unsigned exp-Golomb. More than 31 leading zeros cannot be a 32-bit value and is
    /// reported as invalid (it is what random bytes look like).
    pub(crate) fn ue(&mut self) -> Result<u32, CodecError> {
        let mut leading_zeros = 0u32;
        while !self.flag()? {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return Err(CodecError::invalid(
                    self.context,
                    "exp-Golomb code longer than 32 bits",
                ));
            }
        }
        let suffix = u64::from(self.bits(leading_zeros)?);
        let value = (1u64 << leading_zeros) - 1 + suffix;
        u32::try_from(value)
            .map_err(|_| CodecError::invalid(self.context, "exp-Golomb value above 2^32 - 2"))
    }

    /// `se(v)`: signed exp-Golomb (H.264 §9.1.1 Table 9-3).
    pub(crate) fn se(&mut self) -> Result<i64, CodecError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_table_9_2() {
        // 1 | 010 | 011 | 00100 | 00101 → 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data, "test");
        let values: Vec<u32> = (0..5).map(|_| r.ue().unwrap()).collect();
        assert_eq!(values, [0, 1, 2, 3, 4]);
        let mut r = BitReader::new(&data, "test");
        let values: Vec<i64> = (0..5).map(|_| r.se().unwrap()).collect();
        assert_eq!(values, [0, 1, -1, 2, -2]);
    }

    #[test]
    fn long_codes_and_truncation_are_errors() {
        assert!(BitReader::new(&[0, 0, 0, 0, 0], "t").ue().is_err());
        assert!(BitReader::new(&[0x00, 0x01], "t").ue().is_err());
        assert_eq!(
            BitReader::new(&[0xff], "t").bits(9),
            Err(CodecError::Truncated { context: "t" })
        );
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]), [0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(rbsp(&[0, 3, 0, 0, 0, 3]), [0, 3, 0, 0, 0]);
    }
}
