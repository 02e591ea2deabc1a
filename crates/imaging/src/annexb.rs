//! Length-prefixed NAL units (ISO/IEC 14496-15 §5.3.2 / §8.3.2 sample format: each NAL unit after
//! a `nal_length_size`-byte big-endian length) rewritten as an Annex B byte stream (ITU-T H.264
//! / H.265 Annex B: each NAL unit after a `00 00 00 01` start code), which libavcodec's H.264 and
//! HEVC decoders read without codec extradata. The parameter sets of the codec private data go
//! in front of the first access unit, so the decoder needs nothing else.

use thiserror::Error;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AnnexBError {
    #[error("NAL length size {0} is not 1, 2 or 4")]
    LengthSize(u8),
    #[error("a NAL unit length at byte {offset} runs past the end of the {len}-byte sample")]
    Truncated { offset: usize, len: usize },
}

/// Appends the parameter sets (VPS, SPS, PPS NAL units, each with its header) as Annex B.
pub fn push_parameter_sets<'a>(out: &mut Vec<u8>, sets: impl IntoIterator<Item = &'a [u8]>) {
    for nal in sets {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
    }
}

/// Appends one sample's NAL units as Annex B. Empty NAL units are dropped.
pub fn push_sample(
    out: &mut Vec<u8>,
    sample: &[u8],
    nal_length_size: u8,
) -> Result<(), AnnexBError> {
    let n = usize::from(nal_length_size);
    if !matches!(n, 1 | 2 | 4) {
        return Err(AnnexBError::LengthSize(nal_length_size));
    }
    let mut pos = 0;
    while pos < sample.len() {
        let truncated = AnnexBError::Truncated {
            offset: pos,
            len: sample.len(),
        };
        let len_bytes = sample.get(pos..pos + n).ok_or(truncated.clone())?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let end = (pos + n).checked_add(len).ok_or(truncated.clone())?;
        let body = sample.get(pos + n..end).ok_or(truncated)?;
        if !body.is_empty() {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(body);
        }
        pos = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_each_length_size() {
        for n in [1u8, 2, 4] {
            let mut sample = Vec::new();
            for nal in [&[0x65u8, 1, 2][..], &[0x06, 9]] {
                let len = nal.len().to_be_bytes();
                sample.extend_from_slice(&len[len.len() - usize::from(n)..]);
                sample.extend_from_slice(nal);
            }
            let mut out = Vec::new();
            push_sample(&mut out, &sample, n).unwrap();
            assert_eq!(out, [0, 0, 0, 1, 0x65, 1, 2, 0, 0, 0, 1, 0x06, 9], "n={n}");
        }
    }

    #[test]
    fn refuses_truncated_and_odd_lengths() {
        let mut out = Vec::new();
        assert_eq!(
            push_sample(&mut out, &[0, 0, 0, 9, 1], 4),
            Err(AnnexBError::Truncated { offset: 0, len: 5 })
        );
        assert_eq!(
            push_sample(&mut out, &[0, 0, 0, 1, 1, 0, 0], 4),
            Err(AnnexBError::Truncated { offset: 5, len: 7 })
        );
        assert_eq!(
            push_sample(&mut out, &[1, 1], 3),
            Err(AnnexBError::LengthSize(3))
        );
        // A length near usize::MAX cannot overflow the range arithmetic into a panic.
        assert!(push_sample(&mut out, &[0xff; 12], 4).is_err());
    }

    #[test]
    fn parameter_sets_get_start_codes() {
        let mut out = Vec::new();
        push_parameter_sets(&mut out, [&[0x67u8, 1][..], &[0x68, 2][..]]);
        assert_eq!(out, [0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2]);
    }
}
