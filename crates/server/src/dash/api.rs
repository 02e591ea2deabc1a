//! `POST /getDASHStreamingSessionURL` (docs/wire.md#getdashstreamingsessionurl): the members,
//! defaults, checks and errors of GetHLSStreamingSessionURL (`hls::api`, whose module doc lists
//! them in order), under DASH's names: `DASHFragmentSelector`, `MaxManifestFragmentResults`, and
//! `DisplayFragmentNumber`; no ContainerFormat (always fMP4) nor DiscontinuityMode.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::control::Result;
use crate::hls::api::{create_session, HlsFragmentSelector, SessionInput};
use crate::hls::Protocol;
use crate::validate::Validator;
use crate::wire::{AwsJson, Input};
use crate::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDashStreamingSessionUrlInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub playback_mode: Option<String>,
    pub display_fragment_timestamp: Option<String>,
    pub display_fragment_number: Option<String>,
    /// The same shape as `HLSFragmentSelector` (botocore model).
    #[serde(rename = "DASHFragmentSelector")]
    pub dash_fragment_selector: Option<HlsFragmentSelector>,
    pub expires: Option<i64>,
    pub max_manifest_fragment_results: Option<i64>,
}

impl Input for GetDashStreamingSessionUrlInput {
    /// Nothing here: [`SessionInput::resolve`] checks every constraint (Expires's bounds are
    /// server settings), as for HLS.
    fn validate(&self, _v: &mut Validator) {}
}

impl GetDashStreamingSessionUrlInput {
    /// The members as GetDASHStreamingSessionURL names them.
    pub fn members(&self) -> SessionInput<'_> {
        SessionInput {
            protocol: Protocol::Dash,
            stream_name: &self.stream_name,
            stream_arn: &self.stream_arn,
            playback_mode: self.playback_mode.as_deref(),
            selector: self.dash_fragment_selector.as_ref(),
            container_format: None,
            discontinuity_mode: None,
            display_fragment_timestamp: self.display_fragment_timestamp.as_deref(),
            display_fragment_number: self.display_fragment_number.as_deref(),
            expires: self.expires,
            max_fragments: self.max_manifest_fragment_results,
        }
    }
}

#[derive(Serialize, Debug)]
pub struct GetDashStreamingSessionUrlOutput {
    #[serde(rename = "DASHStreamingSessionURL")]
    pub dash_streaming_session_url: String,
}

/// `POST /getDASHStreamingSessionURL`.
pub async fn get_dash_streaming_session_url(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<GetDashStreamingSessionUrlInput>,
) -> Result<AwsJson<GetDashStreamingSessionUrlOutput>> {
    let now = state.clock.timestamp();
    let members = input.members();
    let request = members.resolve(&state.config, now)?;
    let token = create_session(&state, &members, &request, now).await?;
    Ok(AwsJson(GetDashStreamingSessionUrlOutput {
        dash_streaming_session_url: format!(
            "{}/dash/v1/getDASHManifest.mpd?SessionToken={token}",
            state.config.data_endpoint()
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hls::session::{ContainerFormat, DiscontinuityMode, PlaybackMode};
    use store::{Timestamp, TimestampKind};

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    fn resolve(json: serde_json::Value) -> Result<crate::hls::api::SessionRequest> {
        let input: GetDashStreamingSessionUrlInput =
            crate::wire::parse_input(json.to_string().as_bytes()).unwrap();
        let config = Config::new(
            "127.0.0.1:4567".parse().unwrap(),
            std::path::PathBuf::from("/nonexistent"),
        );
        input.members().resolve(&config, NOW)
    }

    #[test]
    fn defaults_and_dash_members() {
        let r = resolve(serde_json::json!({"StreamName": "s"})).unwrap();
        assert_eq!(r.mode, PlaybackMode::Live);
        assert_eq!(r.max_fragments, 5);
        assert_eq!(r.expires_seconds, 300);
        assert!(!r.display_timestamp && !r.display_fragment_number);
        // fMP4 always; the producer-clock timeline whatever the selector.
        assert_eq!(r.container, ContainerFormat::FragmentedMp4);
        assert_eq!(r.discontinuity, DiscontinuityMode::Always);
        let r = resolve(serde_json::json!({
            "StreamName": "s", "PlaybackMode": "ON_DEMAND",
            "DisplayFragmentTimestamp": "ALWAYS", "DisplayFragmentNumber": "ALWAYS",
            "DASHFragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": 1_700_000_000, "EndTimestamp": 1_700_000_060}}
        }))
        .unwrap();
        assert_eq!(r.max_fragments, 1000);
        assert_eq!(r.selector, TimestampKind::Producer);
        assert_eq!(r.discontinuity, DiscontinuityMode::Always);
        assert!(r.display_timestamp && r.display_fragment_number);
    }

    /// HLS's errors under DASH's member names.
    #[test]
    fn errors_name_the_dash_members() {
        let err = |json: serde_json::Value| {
            let e = resolve(json.clone()).unwrap_err();
            assert_eq!(e.aws_error_type(), "InvalidArgumentException", "{json}");
            e.message()
        };
        let m = err(serde_json::json!({"StreamName": "s", "MaxManifestFragmentResults": 5001}));
        assert!(m.contains("'maxManifestFragmentResults'"), "{m}");
        let m = err(serde_json::json!({"StreamName": "s", "DisplayFragmentNumber": "YES"}));
        assert!(m.contains("'displayFragmentNumber'"), "{m}");
        let m = err(serde_json::json!({"StreamName": "s",
            "DASHFragmentSelector": {"FragmentSelectorType": "CLIENT"}}));
        assert!(
            m.contains("dASHFragmentSelector.fragmentSelectorType"),
            "{m}"
        );
        let m = err(serde_json::json!({"StreamName": "s", "PlaybackMode": "ON_DEMAND"}));
        assert!(m.contains("The DASHFragmentSelector"), "{m}");
        let m = err(serde_json::json!({"StreamName": "s", "Expires": 299}));
        assert!(m.contains("'expires'"), "{m}");
        // HLS-only members are not DASH's: ignored like any unknown member.
        assert!(resolve(serde_json::json!({"StreamName": "s", "ContainerFormat": "MP4"})).is_ok());
    }
}
