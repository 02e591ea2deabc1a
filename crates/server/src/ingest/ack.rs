//! PutMedia acknowledgement events (docs/wire.md#putmedia-acks): newline-separated JSON objects on the response.

use serde::Serialize;
use store::FragmentNumber;

/// The documented ack error ids (docs/wire.md#putmedia-errors). The `ErrorCode` strings other than
/// `MAX_FRAGMENT_DURATION_REACHED` are named after AWS's producer SDK status names (docs/choices.md#error-ack-behaviour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckError {
    StreamRead,
    MaxFragmentSize,
    MaxFragmentDuration,
    MaxConnectionDuration,
    TimecodeLessThanPrevious,
    InvalidMkvData,
    InvalidProducerTimestamp,
    StreamNotActive,
    FragmentMetadataLimit,
    TrackNumberMismatch,
    FramesMissingForTrack,
    TooManyTracks,
    Internal,
    Archival,
}

impl AckError {
    pub fn id(self) -> u32 {
        match self {
            AckError::StreamRead => 4000,
            AckError::MaxFragmentSize => 4001,
            AckError::MaxFragmentDuration => 4002,
            AckError::MaxConnectionDuration => 4003,
            AckError::TimecodeLessThanPrevious => 4004,
            AckError::InvalidMkvData => 4006,
            AckError::InvalidProducerTimestamp => 4007,
            AckError::StreamNotActive => 4008,
            AckError::FragmentMetadataLimit => 4009,
            AckError::TrackNumberMismatch => 4010,
            AckError::FramesMissingForTrack => 4011,
            AckError::TooManyTracks => 4012,
            AckError::Internal => 5000,
            AckError::Archival => 5001,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            AckError::StreamRead => "STREAM_READ_ERROR",
            AckError::MaxFragmentSize => "MAX_FRAGMENT_SIZE_REACHED",
            AckError::MaxFragmentDuration => "MAX_FRAGMENT_DURATION_REACHED",
            AckError::MaxConnectionDuration => "MAX_CONNECTION_DURATION_REACHED",
            AckError::TimecodeLessThanPrevious => "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS",
            AckError::InvalidMkvData => "INVALID_MKV_DATA",
            AckError::InvalidProducerTimestamp => "INVALID_PRODUCER_TIMESTAMP",
            AckError::StreamNotActive => "STREAM_NOT_ACTIVE",
            AckError::FragmentMetadataLimit => "FRAGMENT_METADATA_LIMIT_REACHED",
            AckError::TrackNumberMismatch => "TRACK_NUMBER_MISMATCH",
            AckError::FramesMissingForTrack => "FRAMES_MISSING_FOR_TRACK",
            AckError::TooManyTracks => "MORE_THAN_ALLOWED_TRACKS_FOUND",
            AckError::Internal => "INTERNAL_ERROR",
            AckError::Archival => "ARCHIVAL_ERROR",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    Buffering,
    Received,
    Persisted,
    Error,
    Idle,
}

/// One ack line. Key names are the ones AWS's producer SDK parses (docs/wire.md#putmedia-acks).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ack {
    pub event_type: EventType,
    /// The cluster timecode as sent, in milliseconds (docs/wire.md#putmedia-acks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment_timecode: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_string")]
    pub fragment_number: Option<FragmentNumber>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
}

fn as_string<S: serde::Serializer>(n: &Option<FragmentNumber>, s: S) -> Result<S::Ok, S::Error> {
    match n {
        Some(n) => s.collect_str(n),
        None => s.serialize_none(),
    }
}

impl Ack {
    pub fn event(event_type: EventType, timecode_ms: i64, number: FragmentNumber) -> Self {
        Ack {
            event_type,
            fragment_timecode: Some(timecode_ms),
            fragment_number: Some(number),
            error_id: None,
            error_code: None,
        }
    }

    pub fn idle() -> Self {
        Ack {
            event_type: EventType::Idle,
            fragment_timecode: None,
            fragment_number: None,
            error_id: None,
            error_code: None,
        }
    }

    pub fn error(
        error: AckError,
        timecode_ms: Option<i64>,
        number: Option<FragmentNumber>,
    ) -> Self {
        Ack {
            event_type: EventType::Error,
            fragment_timecode: timecode_ms,
            fragment_number: number,
            error_id: Some(error.id()),
            error_code: Some(error.code()),
        }
    }

    /// The JSON line, newline-terminated.
    pub fn to_line(&self) -> bytes::Bytes {
        let mut v = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        v.push(b'\n');
        v.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_what_the_producer_sdk_parses() {
        let n = FragmentNumber(91343852333181432511524306419788296);
        let ack = Ack::event(EventType::Persisted, 1663277247152, n);
        assert_eq!(
            &ack.to_line()[..],
            format!("{{\"EventType\":\"PERSISTED\",\"FragmentTimecode\":1663277247152,\"FragmentNumber\":\"{n}\"}}\n").as_bytes()
        );
        let err = Ack::error(AckError::MaxFragmentDuration, Some(5), Some(n));
        let v: serde_json::Value = serde_json::from_slice(&err.to_line()).unwrap();
        assert_eq!(v["ErrorId"], 4002);
        assert_eq!(v["ErrorCode"], "MAX_FRAGMENT_DURATION_REACHED");
        assert_eq!(v["EventType"], "ERROR");
        assert_eq!(&Ack::idle().to_line()[..], b"{\"EventType\":\"IDLE\"}\n");
    }
}
