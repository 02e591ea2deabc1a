//! A queue of input chunks: peek a few bytes across chunk boundaries, take a contiguous `Bytes`
//! (a zero-copy slice when it lies in one chunk), or discard bytes without buffering them.

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

#[derive(Debug, Default)]
pub(crate) struct ChunkQueue {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl ChunkQueue {
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies up to `out.len()` leading bytes into `out`; returns how many were available.
    pub(crate) fn peek_into(&self, out: &mut [u8]) -> usize {
        let mut filled = 0;
        for chunk in &self.chunks {
            if filled == out.len() {
                break;
            }
            let n = chunk.len().min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&chunk[..n]);
            filled += n;
        }
        filled
    }

    /// Removes and returns the first `n` bytes; the caller has checked `n <= self.len()`.
    /// Zero-copy when the bytes lie in the first chunk; copied into one buffer otherwise.
    pub(crate) fn take(&mut self, n: usize) -> Bytes {
        debug_assert!(n <= self.len);
        let n = n.min(self.len);
        self.len -= n;
        match self.chunks.front_mut() {
            Some(front) if front.len() >= n => {
                let taken = front.split_to(n);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                taken
            }
            _ => {
                let mut joined = BytesMut::with_capacity(n);
                while joined.len() < n {
                    let Some(front) = self.chunks.front_mut() else {
                        break;
                    };
                    let want = (n - joined.len()).min(front.len());
                    joined.extend_from_slice(&front.split_to(want));
                    if front.is_empty() {
                        self.chunks.pop_front();
                    }
                }
                joined.freeze()
            }
        }
    }

    /// Discards up to `n` bytes; returns how many were discarded.
    pub(crate) fn skip(&mut self, n: u64) -> usize {
        let mut skipped = 0usize;
        while (skipped as u64) < n {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let want = usize::try_from(n - skipped as u64)
                .unwrap_or(usize::MAX)
                .min(front.len());
            if want == front.len() {
                self.chunks.pop_front();
            } else {
                let _ = front.split_to(want);
            }
            skipped += want;
        }
        self.len -= skipped;
        skipped
    }

    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_across_chunks_and_skip() {
        let mut q = ChunkQueue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::from_static(b""));
        q.push(Bytes::from_static(b"defg"));
        let mut peek = [0u8; 5];
        assert_eq!(q.peek_into(&mut peek), 5);
        assert_eq!(&peek, b"abcde");
        assert_eq!(&q.take(2)[..], b"ab");
        assert_eq!(&q.take(3)[..], b"cde");
        assert_eq!(q.skip(10), 2);
        assert!(q.is_empty());
    }
}
