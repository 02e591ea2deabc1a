//! Feeds arbitrary bytes to the MKV reader in two chunks split at a position taken from the
//! first byte, and checks that the events equal those of one chunk and that the reader ends.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::mkv::{Event, MkvError, MkvReader, ReaderLimits};

fn read(chunks: &[Bytes]) -> (Vec<Event>, Option<MkvError>) {
    // Small limits so the fuzzer reaches the TooLarge paths.
    let limits = ReaderLimits {
        max_frame_bytes: 4096,
        max_header_bytes: 8192,
        max_tracks: 8,
    };
    let mut reader = MkvReader::new(limits);
    let mut events = Vec::new();
    for chunk in chunks {
        reader.push(chunk.clone());
        loop {
            match reader.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(error) => return (events, Some(error)),
            }
        }
    }
    loop {
        match reader.finish() {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return (events, None),
            Err(error) => return (events, Some(error)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let input = Bytes::copy_from_slice(rest);
    let split = usize::from(first) * input.len() / 255;
    let whole = read(std::slice::from_ref(&input));
    let halves = read(&[input.slice(..split), input.slice(split..)]);
    assert_eq!(whole, halves, "split at {split}");
});
