//! `kinesis-video-archived-media` operations (docs/wire.md#listfragments). ListFragments for now;
//! GetHLSStreamingSessionURL and the rest join here.
//!
//! ListFragments choices (docs/choices.md#pagination-tokens):
//! - MaxResults defaults to 1000 (the model's maximum; AWS's default is undocumented).
//! - Fragments come ascending by (selected timestamp, fragment number) — AWS promises no order,
//!   ascending is allowed and what users want.
//! - NextToken is standard base64 of `v1:<P|S>:<start ms>:<end ms>:<last ts ms>:<last number>`,
//!   so a token carries the selector and works without it. When both are sent, the token wins
//!   (the model doc: the selector is "only required when the NextToken isn't passed").

use axum::extract::State;
use base64::Engine;
use serde::{Deserialize, Serialize};
use store::{FragmentNumber, FragmentQuery, Timestamp, TimestampKind};

use crate::control::{resolve_stream, validate_stream_ref, Result};
use crate::error::ApiError;
use crate::validate::{self as v, Validator};
use crate::wire::{epoch_seconds, AwsJson, Input};
use crate::AppState;

/// ListFragments page size when MaxResults is absent.
pub const LIST_FRAGMENTS_DEFAULT: i64 = 1000;
pub const LIST_FRAGMENTS_MAX: i64 = 1000;

const FRAGMENT_SELECTOR_TYPES: &[&str] = &["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimestampRange {
    pub start_timestamp: Option<f64>,
    pub end_timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FragmentSelector {
    pub fragment_selector_type: Option<String>,
    pub timestamp_range: Option<TimestampRange>,
}

impl FragmentSelector {
    pub(crate) fn validate(&self, v: &mut Validator, path: &str) {
        let type_path = format!("{path}.fragmentSelectorType");
        v.required(&type_path, &self.fragment_selector_type);
        v.one_of(
            &type_path,
            self.fragment_selector_type.as_deref(),
            FRAGMENT_SELECTOR_TYPES,
        );
        let range_path = format!("{path}.timestampRange");
        v.required(&range_path, &self.timestamp_range);
        if let Some(range) = &self.timestamp_range {
            v.required(
                &format!("{range_path}.startTimestamp"),
                &range.start_timestamp,
            );
            v.required(&format!("{range_path}.endTimestamp"), &range.end_timestamp);
        }
    }

    /// The validated selector as (kind, start, end).
    pub(crate) fn resolve(&self) -> Result<(TimestampKind, Timestamp, Timestamp)> {
        let kind = match self.fragment_selector_type.as_deref() {
            Some("SERVER_TIMESTAMP") => TimestampKind::Server,
            _ => TimestampKind::Producer,
        };
        let range = self.timestamp_range.as_ref();
        let bad = || ApiError::InvalidArgument("The timestamp range is invalid.".into());
        let start = range
            .and_then(|r| r.start_timestamp)
            .and_then(epoch_seconds::from_seconds)
            .ok_or_else(bad)?;
        let end = range
            .and_then(|r| r.end_timestamp)
            .and_then(epoch_seconds::from_seconds)
            .ok_or_else(bad)?;
        if start > end {
            return Err(ApiError::InvalidArgument(
                "The StartTimestamp must be earlier than or equal to the EndTimestamp.".into(),
            ));
        }
        Ok((kind, start, end))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFragmentsInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub fragment_selector: Option<FragmentSelector>,
}

impl Input for ListFragmentsInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
        v.range(
            "maxResults",
            self.max_results,
            Some(1),
            Some(LIST_FRAGMENTS_MAX),
        );
        v.string(
            "nextToken",
            self.next_token.as_deref(),
            &v::ARCHIVED_NEXT_TOKEN_RULE,
        );
        if let Some(selector) = &self.fragment_selector {
            selector.validate(v, "fragmentSelector");
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Fragment {
    pub fragment_number: String,
    pub fragment_size_in_bytes: u64,
    #[serde(with = "epoch_seconds")]
    pub producer_timestamp: Timestamp,
    #[serde(with = "epoch_seconds")]
    pub server_timestamp: Timestamp,
    pub fragment_length_in_milliseconds: u64,
}

impl From<&store::FragmentSummary> for Fragment {
    fn from(f: &store::FragmentSummary) -> Self {
        Fragment {
            fragment_number: f.number.to_string(),
            fragment_size_in_bytes: f.size_bytes,
            producer_timestamp: f.producer_timestamp,
            server_timestamp: f.server_timestamp,
            fragment_length_in_milliseconds: f.duration_ms,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFragmentsOutput {
    pub fragments: Vec<Fragment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Where a ListFragments page resumes: the selector and the last fragment returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentCursor {
    pub kind: TimestampKind,
    pub start: Timestamp,
    pub end: Timestamp,
    pub after: (Timestamp, FragmentNumber),
}

impl FragmentCursor {
    pub fn encode(&self) -> String {
        let kind = match self.kind {
            TimestampKind::Producer => 'P',
            TimestampKind::Server => 'S',
        };
        let text = format!(
            "v1:{kind}:{}:{}:{}:{}",
            self.start.millis(),
            self.end.millis(),
            self.after.0.millis(),
            self.after.1 .0
        );
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    pub fn decode(token: &str) -> Result<Self> {
        let invalid = || ApiError::InvalidArgument("The NextToken is invalid.".into());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let parts: Vec<&str> = text.split(':').collect();
        let [version, kind, start, end, after_ts, after_number] = parts[..] else {
            return Err(invalid());
        };
        if version != "v1" {
            return Err(invalid());
        }
        let kind = match kind {
            "P" => TimestampKind::Producer,
            "S" => TimestampKind::Server,
            _ => return Err(invalid()),
        };
        let ms = |s: &str| {
            s.parse::<i64>()
                .map(Timestamp::from_millis)
                .map_err(|_| invalid())
        };
        let number = after_number
            .parse::<u128>()
            .map(FragmentNumber)
            .map_err(|_| invalid())?;
        Ok(FragmentCursor {
            kind,
            start: ms(start)?,
            end: ms(end)?,
            after: (ms(after_ts)?, number),
        })
    }
}

fn selected_timestamp(kind: TimestampKind, f: &store::FragmentSummary) -> Timestamp {
    match kind {
        TimestampKind::Producer => f.producer_timestamp,
        TimestampKind::Server => f.server_timestamp,
    }
}

/// `POST /listFragments`.
pub async fn list_fragments(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<ListFragmentsInput>,
) -> Result<AwsJson<ListFragmentsOutput>> {
    let (kind, start, end, after) = match (&input.next_token, &input.fragment_selector) {
        (Some(token), _) => {
            let c = FragmentCursor::decode(token)?;
            (c.kind, c.start, c.end, Some(c.after))
        }
        (None, Some(selector)) => {
            let (kind, start, end) = selector.resolve()?;
            (kind, start, end, None)
        }
        (None, None) => {
            return Err(ApiError::InvalidArgument(
                "A FragmentSelector is required when no NextToken is given.".into(),
            ))
        }
    };
    let stream = resolve_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )
    .await?;
    let limit = input.max_results.unwrap_or(LIST_FRAGMENTS_DEFAULT) as usize;
    let mut rows = state
        .catalog
        .query_fragment_summaries(FragmentQuery {
            stream: stream.id,
            kind,
            start,
            end,
            after,
            limit: limit + 1,
        })
        .await?;
    let next_token = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| {
            FragmentCursor {
                kind,
                start,
                end,
                after: (selected_timestamp(kind, last), last.number),
            }
            .encode()
        })
    } else {
        None
    };
    Ok(AwsJson(ListFragmentsOutput {
        fragments: rows.iter().map(Fragment::from).collect(),
        next_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_token_round_trip() {
        let cursor = FragmentCursor {
            kind: TimestampKind::Server,
            start: Timestamp(1_704_067_200_000),
            end: Timestamp(1_704_070_800_500),
            after: (
                Timestamp(1_704_067_260_123),
                FragmentNumber(170_406_726_012_300_000_007),
            ),
        };
        let token = cursor.encode();
        assert!(v::ARCHIVED_NEXT_TOKEN.matches(&token), "{token}");
        assert_eq!(FragmentCursor::decode(&token).unwrap(), cursor);
    }

    #[test]
    fn bad_tokens_are_invalid_argument() {
        for token in [
            "",
            "!!",
            "YWJj",
            &base64::engine::general_purpose::STANDARD.encode("v2:P:1:2:3:4"),
        ] {
            let e = FragmentCursor::decode(token).unwrap_err();
            assert_eq!(e.aws_error_type(), "InvalidArgumentException", "{token}");
        }
    }

    #[test]
    fn fragment_row_shape() {
        let f = Fragment {
            fragment_number: FragmentNumber(42).to_string(),
            fragment_size_in_bytes: 788_604,
            producer_timestamp: Timestamp(1_643_353_235_931),
            server_timestamp: Timestamp(1_643_353_247_067),
            fragment_length_in_milliseconds: 1796,
        };
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "FragmentNumber": "00000000000000000000000000000000000000000000042",
                "FragmentSizeInBytes": 788604,
                "ProducerTimestamp": 1643353235.931,
                "ServerTimestamp": 1643353247.067,
                "FragmentLengthInMilliseconds": 1796
            })
        );
    }
}
