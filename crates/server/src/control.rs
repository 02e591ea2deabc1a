//! `kinesisvideo` control plane over the [`store::Catalog`] (docs/wire.md#control-plane).
//!
//! Choices (documented here, where they are made):
//! - Streams are ACTIVE as soon as CreateStream returns (docs/wire.md#putmedia-body: producers PutMedia at once).
//! - Every metadata change (UpdateStream, UpdateDataRetention) gets a new random `Version` (32 hex
//!   chars). Tag changes keep the version (see [`change_tags`]).
//! - Name|ARN operations: neither given → InvalidArgumentException; both given and naming
//!   different streams → InvalidArgumentException.
//! - A request map of more than 50 tags fails validation (InvalidArgumentException, the model's
//!   max); a TagStream/TagResource that would leave more than 50 tags on the stream answers
//!   TagsPerResourceExceededLimitException.
//! - ListStreams / ListTagsFor*: NextToken of ListStreams is base64 of the last name returned;
//!   the tag lists are at most 50 entries and always come in one page.

use std::collections::BTreeMap;

use axum::extract::State;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, STREAM_NOT_FOUND};
use crate::validate::{self as v, Validator};
use crate::wire::{epoch_seconds, AwsJson, Input};
use crate::AppState;

/// Most tags a stream may carry (docs/wire.md#control-plane).
pub const MAX_TAGS: usize = 50;
/// Longest retention (10 years, docs/wire.md#control-plane).
pub const MAX_RETENTION_HOURS: i64 = 87_600;
/// ListStreams page size when MaxResults is absent (model doc: default 10,000).
pub const LIST_STREAMS_DEFAULT: i64 = 10_000;

/// The eight `APIName` values of GetDataEndpoint.
pub const API_NAMES: &[&str] = &[
    "PUT_MEDIA",
    "GET_MEDIA",
    "LIST_FRAGMENTS",
    "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL",
    "GET_DASH_STREAMING_SESSION_URL",
    "GET_CLIP",
    "GET_IMAGES",
];

pub type Result<T> = std::result::Result<T, ApiError>;

/// A fresh stream version: 32 alphanumerics (model: 1..64 `[a-zA-Z0-9]+`).
pub fn new_version() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Validates the common `StreamName` / `StreamARN` pair.
pub fn validate_stream_ref(v: &mut Validator, name: &Option<String>, arn: &Option<String>) {
    v.string("streamName", name.as_deref(), &v::STREAM_NAME_RULE);
    v.string("streamARN", arn.as_deref(), &v::RESOURCE_ARN_RULE);
}

/// [`resolve_stream`] for an operation that reads stored fragments (GetClip, GetImages):
/// retention 0 → `NoDataRetentionException` naming `operation`.
pub async fn resolve_retained_stream(
    state: &AppState,
    name: Option<&str>,
    arn: Option<&str>,
    operation: &str,
) -> Result<store::StreamRecord> {
    let stream = resolve_stream(state, name, arn).await?;
    if stream.data_retention_hours == 0 {
        return Err(ApiError::NoDataRetention(format!(
            "The stream {} has no data retention (DataRetentionInHours 0); {operation} reads \
             stored fragments. Give it a retention with UpdateDataRetention.",
            stream.name
        )));
    }
    Ok(stream)
}

/// Finds the stream a name|ARN operation names (see the module doc for the rules).
pub async fn resolve_stream(
    state: &AppState,
    name: Option<&str>,
    arn: Option<&str>,
) -> Result<store::StreamRecord> {
    let record = match (name, arn) {
        (None, None) => {
            return Err(ApiError::InvalidArgument(
                "You must specify either the StreamName or the StreamARN.".into(),
            ))
        }
        (Some(name), Some(arn)) => {
            let record = state.catalog.stream_by_name(name).await?;
            match record {
                Some(r) if r.arn != arn => {
                    return Err(ApiError::InvalidArgument(
                        "The StreamName and the StreamARN given name different streams.".into(),
                    ))
                }
                other => other,
            }
        }
        (Some(name), None) => state.catalog.stream_by_name(name).await?,
        (None, Some(arn)) => state.catalog.stream_by_arn(arn).await?,
    };
    record.ok_or_else(|| ApiError::ResourceNotFound(STREAM_NOT_FOUND.into()))
}

async fn stream_by_arn(state: &AppState, arn: &str) -> Result<store::StreamRecord> {
    state
        .catalog
        .stream_by_arn(arn)
        .await?
        .ok_or_else(|| ApiError::ResourceNotFound(STREAM_NOT_FOUND.into()))
}

/// The `{}` output of operations that return nothing.
#[derive(Serialize)]
pub struct Empty {}

// ------------------------------------------------------------------------------------------------
// StreamInfo

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    pub stream_name: String,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub kms_key_id: String,
    pub version: String,
    pub status: &'static str,
    #[serde(with = "epoch_seconds")]
    pub creation_time: store::Timestamp,
    pub data_retention_in_hours: u32,
}

impl From<store::StreamRecord> for StreamInfo {
    fn from(r: store::StreamRecord) -> Self {
        StreamInfo {
            device_name: r.device_name,
            stream_name: r.name,
            stream_arn: r.arn,
            media_type: r.media_type,
            kms_key_id: r.kms_key_id,
            version: r.version,
            status: r.status.as_str(),
            creation_time: r.creation_time,
            data_retention_in_hours: r.data_retention_hours,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// CreateStream

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStreamInput {
    pub device_name: Option<String>,
    pub stream_name: Option<String>,
    pub media_type: Option<String>,
    pub kms_key_id: Option<String>,
    pub data_retention_in_hours: Option<i64>,
    pub tags: Option<BTreeMap<String, String>>,
    pub stream_storage_configuration: Option<StreamStorageConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamStorageConfiguration {
    pub default_storage_tier: Option<String>,
}

impl Input for CreateStreamInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            "deviceName",
            self.device_name.as_deref(),
            &v::DEVICE_NAME_RULE,
        );
        v.required("streamName", &self.stream_name);
        v.string(
            "streamName",
            self.stream_name.as_deref(),
            &v::STREAM_NAME_RULE,
        );
        v.string("mediaType", self.media_type.as_deref(), &v::MEDIA_TYPE_RULE);
        v.string("kmsKeyId", self.kms_key_id.as_deref(), &v::KMS_KEY_ID_RULE);
        v.range(
            "dataRetentionInHours",
            self.data_retention_in_hours,
            Some(0),
            None,
        );
        v.tag_map("tags", self.tags.as_ref());
        if let Some(storage) = &self.stream_storage_configuration {
            v.required(
                "streamStorageConfiguration.defaultStorageTier",
                &storage.default_storage_tier,
            );
            v.one_of(
                "streamStorageConfiguration.defaultStorageTier",
                storage.default_storage_tier.as_deref(),
                &["HOT", "WARM"],
            );
        }
    }
}

#[derive(Serialize)]
pub struct CreateStreamOutput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
}

/// `POST /createStream`.
pub async fn create_stream(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<CreateStreamInput>,
) -> Result<AwsJson<CreateStreamOutput>> {
    let name = input.stream_name.unwrap_or_default();
    let retention = input.data_retention_in_hours.unwrap_or(0);
    if retention > MAX_RETENTION_HOURS {
        return Err(ApiError::InvalidArgument(format!(
            "DataRetentionInHours must be between 0 and {MAX_RETENTION_HOURS}."
        )));
    }
    let now = state.clock.timestamp();
    let config = &state.config;
    let arn = format!(
        "arn:aws:kinesisvideo:{}:{}:stream/{}/{}",
        config.region,
        config.account_id,
        name,
        now.millis()
    );
    let record = state
        .catalog
        .create_stream(store::NewStream {
            name,
            arn,
            device_name: input.device_name,
            media_type: input.media_type,
            kms_key_id: input
                .kms_key_id
                .unwrap_or_else(|| config.default_kms_key_id()),
            version: new_version(),
            creation_time: now,
            data_retention_hours: retention as u32,
            storage_tier: input
                .stream_storage_configuration
                .and_then(|s| s.default_storage_tier)
                .unwrap_or_else(|| "HOT".into()),
            tags: input.tags.unwrap_or_default(),
        })
        .await?;
    tracing::info!(stream = %record.name, arn = %record.arn, "stream created");
    Ok(AwsJson(CreateStreamOutput {
        stream_arn: record.arn,
    }))
}

// ------------------------------------------------------------------------------------------------
// DescribeStream

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamRefInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
}

impl Input for StreamRefInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamOutput {
    pub stream_info: StreamInfo,
}

/// `POST /describeStream`.
pub async fn describe_stream(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<StreamRefInput>,
) -> Result<AwsJson<DescribeStreamOutput>> {
    let record = resolve_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )
    .await?;
    Ok(AwsJson(DescribeStreamOutput {
        stream_info: record.into(),
    }))
}

// ------------------------------------------------------------------------------------------------
// ListStreams

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsInput {
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub stream_name_condition: Option<StreamNameCondition>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamNameCondition {
    pub comparison_operator: Option<String>,
    pub comparison_value: Option<String>,
}

impl Input for ListStreamsInput {
    fn validate(&self, v: &mut Validator) {
        v.range("maxResults", self.max_results, Some(1), Some(10_000));
        v.string(
            "nextToken",
            self.next_token.as_deref(),
            &v::LIST_STREAMS_NEXT_TOKEN_RULE,
        );
        if let Some(c) = &self.stream_name_condition {
            v.one_of(
                "streamNameCondition.comparisonOperator",
                c.comparison_operator.as_deref(),
                &["BEGINS_WITH"],
            );
            v.string(
                "streamNameCondition.comparisonValue",
                c.comparison_value.as_deref(),
                &v::STREAM_NAME_RULE,
            );
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsOutput {
    pub stream_info_list: Vec<StreamInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// ListStreams NextToken: standard base64 of the last stream name of the page.
pub fn encode_list_streams_token(last_name: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(last_name)
}

pub fn decode_list_streams_token(token: &str) -> Result<String> {
    let invalid = || ApiError::InvalidArgument("The NextToken is invalid.".into());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| invalid())?;
    let name = String::from_utf8(bytes).map_err(|_| invalid())?;
    if name.is_empty() || !v::STREAM_NAME.matches(&name) {
        return Err(invalid());
    }
    Ok(name)
}

/// `POST /listStreams`.
pub async fn list_streams(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<ListStreamsInput>,
) -> Result<AwsJson<ListStreamsOutput>> {
    let limit = input.max_results.unwrap_or(LIST_STREAMS_DEFAULT) as usize;
    let after = match input.next_token.as_deref() {
        None | Some("") => None,
        Some(token) => Some(decode_list_streams_token(token)?),
    };
    let prefix = input.stream_name_condition.and_then(|c| c.comparison_value);
    let mut records = state
        .catalog
        .list_streams(prefix.as_deref(), after.as_deref(), limit + 1)
        .await?;
    let next_token = if records.len() > limit {
        records.truncate(limit);
        records.last().map(|r| encode_list_streams_token(&r.name))
    } else {
        None
    };
    Ok(AwsJson(ListStreamsOutput {
        stream_info_list: records.into_iter().map(StreamInfo::from).collect(),
        next_token,
    }))
}

// ------------------------------------------------------------------------------------------------
// DeleteStream

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteStreamInput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub current_version: Option<String>,
}

impl Input for DeleteStreamInput {
    fn validate(&self, v: &mut Validator) {
        v.required("streamARN", &self.stream_arn);
        v.string(
            "streamARN",
            self.stream_arn.as_deref(),
            &v::RESOURCE_ARN_RULE,
        );
        v.string(
            "currentVersion",
            self.current_version.as_deref(),
            &v::VERSION_RULE,
        );
    }
}

/// `POST /deleteStream`: removes the catalog rows, then the media. A failure to remove media is
/// logged and does not fail the call (the stream is gone; `store::embedded::open` removes media
/// of unknown streams at the next start).
pub async fn delete_stream(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<DeleteStreamInput>,
) -> Result<AwsJson<Empty>> {
    let record = stream_by_arn(&state, input.stream_arn.as_deref().unwrap_or_default()).await?;
    state
        .catalog
        .delete_stream(record.id, input.current_version.as_deref())
        .await?;
    state.metrics.remove_stream(&record.name);
    if let Err(e) = state.media.delete_stream(record.id).await {
        tracing::error!(stream = %record.name, error = %e, "stream deleted but its media could not be removed");
    }
    tracing::info!(stream = %record.name, "stream deleted");
    Ok(AwsJson(Empty {}))
}

// ------------------------------------------------------------------------------------------------
// UpdateStream

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub current_version: Option<String>,
    pub device_name: Option<String>,
    pub media_type: Option<String>,
}

impl Input for UpdateStreamInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
        v.required("currentVersion", &self.current_version);
        v.string(
            "currentVersion",
            self.current_version.as_deref(),
            &v::VERSION_RULE,
        );
        v.string(
            "deviceName",
            self.device_name.as_deref(),
            &v::DEVICE_NAME_RULE,
        );
        v.string("mediaType", self.media_type.as_deref(), &v::MEDIA_TYPE_RULE);
    }
}

/// `POST /updateStream`.
pub async fn update_stream(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<UpdateStreamInput>,
) -> Result<AwsJson<Empty>> {
    let record = resolve_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )
    .await?;
    let update = store::StreamUpdate {
        device_name: input.device_name,
        media_type: input.media_type,
        new_version: new_version(),
        ..Default::default()
    };
    state
        .catalog
        .update_stream(record.id, input.current_version.as_deref(), update)
        .await?;
    Ok(AwsJson(Empty {}))
}

// ------------------------------------------------------------------------------------------------
// UpdateDataRetention

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateDataRetentionInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub current_version: Option<String>,
    pub operation: Option<String>,
    pub data_retention_change_in_hours: Option<i64>,
}

impl Input for UpdateDataRetentionInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
        v.required("currentVersion", &self.current_version);
        v.string(
            "currentVersion",
            self.current_version.as_deref(),
            &v::VERSION_RULE,
        );
        v.required("operation", &self.operation);
        v.one_of(
            "operation",
            self.operation.as_deref(),
            &["INCREASE_DATA_RETENTION", "DECREASE_DATA_RETENTION"],
        );
        v.required(
            "dataRetentionChangeInHours",
            &self.data_retention_change_in_hours,
        );
        v.range(
            "dataRetentionChangeInHours",
            self.data_retention_change_in_hours,
            Some(1),
            None,
        );
    }
}

/// `POST /updateDataRetention`. The version is checked before the arithmetic, so a stale version
/// answers VersionMismatchException whatever the change.
pub async fn update_data_retention(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<UpdateDataRetentionInput>,
) -> Result<AwsJson<Empty>> {
    let record = resolve_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )
    .await?;
    let current_version = input.current_version.unwrap_or_default();
    if record.version != current_version {
        return Err(store::StoreError::VersionMismatch {
            stream: record.id,
            expected: current_version,
            found: record.version,
        }
        .into());
    }
    let change = input.data_retention_change_in_hours.unwrap_or(0);
    let current = i64::from(record.data_retention_hours);
    let new = match input.operation.as_deref() {
        Some("INCREASE_DATA_RETENTION") => current.saturating_add(change),
        _ => current - change,
    };
    if !(0..=MAX_RETENTION_HOURS).contains(&new) {
        return Err(ApiError::InvalidArgument(format!(
            "The data retention would become {new} hours; it must stay between 0 and {MAX_RETENTION_HOURS}."
        )));
    }
    let update = store::StreamUpdate {
        data_retention_hours: Some(new as u32),
        new_version: new_version(),
        ..Default::default()
    };
    state
        .catalog
        .update_stream(record.id, Some(&current_version), update)
        .await?;
    Ok(AwsJson(Empty {}))
}

// ------------------------------------------------------------------------------------------------
// GetDataEndpoint

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDataEndpointInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "APIName")]
    pub api_name: Option<String>,
}

impl Input for GetDataEndpointInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
        v.required("aPIName", &self.api_name);
        v.one_of("aPIName", self.api_name.as_deref(), API_NAMES);
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDataEndpointOutput {
    pub data_endpoint: String,
}

/// `POST /getDataEndpoint`: this server's public URL for every API (one listener serves all).
pub async fn get_data_endpoint(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<GetDataEndpointInput>,
) -> Result<AwsJson<GetDataEndpointOutput>> {
    resolve_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )
    .await?;
    Ok(AwsJson(GetDataEndpointOutput {
        data_endpoint: state.config.data_endpoint().to_owned(),
    }))
}

// ------------------------------------------------------------------------------------------------
// Tags

/// How often a tag change is retried when a concurrent update moved the version under it.
const TAG_UPDATE_ATTEMPTS: usize = 5;

/// Applies a tag change without changing the stream's `Version` (tags are not stream metadata:
/// UpdateStream after TagStream keeps working with the version read before). Tags are applied as
/// deltas inside the catalog's transaction, so concurrent changes are never lost; the version is
/// compared so the stored version is never rolled back (retried when a metadata update won the race).
/// Two concurrent TagStreams may together pass the 50-tag limit (the catalog has no tag count check).
async fn change_tags(
    state: &AppState,
    mut record: store::StreamRecord,
    set: &BTreeMap<String, String>,
    remove: &[String],
) -> Result<()> {
    for _ in 0..TAG_UPDATE_ATTEMPTS {
        let mut merged = record.tags.clone();
        merged.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        for key in remove {
            merged.remove(key);
        }
        if merged.len() > MAX_TAGS {
            return Err(ApiError::TagsPerResourceExceededLimit(format!(
                "The stream {} would have {} tags; the limit is {MAX_TAGS}.",
                record.name,
                merged.len()
            )));
        }
        let update = store::StreamUpdate {
            set_tags: set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            remove_tags: remove.to_vec(),
            new_version: record.version.clone(),
            ..Default::default()
        };
        match state
            .catalog
            .update_stream(record.id, Some(&record.version), update)
            .await
        {
            Ok(_) => return Ok(()),
            Err(store::StoreError::VersionMismatch { .. }) => {
                record = state
                    .catalog
                    .stream_by_id(record.id)
                    .await?
                    .ok_or_else(|| ApiError::ResourceNotFound(STREAM_NOT_FOUND.into()))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::ClientLimitExceeded(
        "The stream is being changed by other requests; retry the tag change.".into(),
    ))
}

async fn add_tags(
    state: &AppState,
    record: store::StreamRecord,
    tags: BTreeMap<String, String>,
) -> Result<()> {
    change_tags(state, record, &tags, &[]).await
}

async fn remove_tags(
    state: &AppState,
    record: store::StreamRecord,
    keys: Vec<String>,
) -> Result<()> {
    change_tags(state, record, &BTreeMap::new(), &keys).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagStreamInput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub stream_name: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
}

impl Input for TagStreamInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
        v.required("tags", &self.tags);
        v.tag_map("tags", self.tags.as_ref());
    }
}

/// `POST /tagStream`.
pub async fn tag_stream(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<TagStreamInput>,
) -> Result<AwsJson<Empty>> {
    let record = resolve_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )
    .await?;
    add_tags(&state, record, input.tags.unwrap_or_default()).await?;
    Ok(AwsJson(Empty {}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagStreamInput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub stream_name: Option<String>,
    pub tag_key_list: Option<Vec<String>>,
}

impl Input for UntagStreamInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
        v.required("tagKeyList", &self.tag_key_list);
        v.tag_key_list("tagKeyList", self.tag_key_list.as_ref());
    }
}

/// `POST /untagStream`: keys the stream does not have are ignored.
pub async fn untag_stream(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<UntagStreamInput>,
) -> Result<AwsJson<Empty>> {
    let record = resolve_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )
    .await?;
    remove_tags(&state, record, input.tag_key_list.unwrap_or_default()).await?;
    Ok(AwsJson(Empty {}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForStreamInput {
    pub next_token: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub stream_name: Option<String>,
}

impl Input for ListTagsForStreamInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            "nextToken",
            self.next_token.as_deref(),
            &v::LIST_STREAMS_NEXT_TOKEN_RULE,
        );
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsOutput {
    pub tags: BTreeMap<String, String>,
}

/// `POST /listTagsForStream` (all tags in one page; NextToken is ignored).
pub async fn list_tags_for_stream(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<ListTagsForStreamInput>,
) -> Result<AwsJson<ListTagsOutput>> {
    let record = resolve_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )
    .await?;
    Ok(AwsJson(ListTagsOutput { tags: record.tags }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
    pub tags: Option<Vec<Tag>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: Option<String>,
    pub value: Option<String>,
}

impl Input for TagResourceInput {
    fn validate(&self, v: &mut Validator) {
        v.required("resourceARN", &self.resource_arn);
        v.string(
            "resourceARN",
            self.resource_arn.as_deref(),
            &v::RESOURCE_ARN_RULE,
        );
        v.required("tags", &self.tags);
        if let Some(tags) = &self.tags {
            let shown: Vec<String> = tags
                .iter()
                .map(|t| {
                    format!(
                        "Tag(Key={}, Value={})",
                        t.key.as_deref().unwrap_or("null"),
                        t.value.as_deref().unwrap_or("null")
                    )
                })
                .collect();
            v.count("tags", &v::JavaList(&shown), tags.len(), 1, MAX_TAGS);
            for (i, tag) in tags.iter().enumerate() {
                let path = format!("tags.{}.member", i + 1);
                v.required(&format!("{path}.key"), &tag.key);
                v.string(&format!("{path}.key"), tag.key.as_deref(), &v::TAG_KEY_RULE);
                v.required(&format!("{path}.value"), &tag.value);
                v.string(
                    &format!("{path}.value"),
                    tag.value.as_deref(),
                    &v::TAG_VALUE_RULE,
                );
            }
        }
    }
}

/// `POST /TagResource` (tags as a list of `{Key, Value}`; a repeated key keeps its last value).
pub async fn tag_resource(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<TagResourceInput>,
) -> Result<AwsJson<Empty>> {
    let record = stream_by_arn(&state, input.resource_arn.as_deref().unwrap_or_default()).await?;
    let tags = input
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect();
    add_tags(&state, record, tags).await?;
    Ok(AwsJson(Empty {}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
    pub tag_key_list: Option<Vec<String>>,
}

impl Input for UntagResourceInput {
    fn validate(&self, v: &mut Validator) {
        v.required("resourceARN", &self.resource_arn);
        v.string(
            "resourceARN",
            self.resource_arn.as_deref(),
            &v::RESOURCE_ARN_RULE,
        );
        v.required("tagKeyList", &self.tag_key_list);
        v.tag_key_list("tagKeyList", self.tag_key_list.as_ref());
    }
}

/// `POST /UntagResource`.
pub async fn untag_resource(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<UntagResourceInput>,
) -> Result<AwsJson<Empty>> {
    let record = stream_by_arn(&state, input.resource_arn.as_deref().unwrap_or_default()).await?;
    remove_tags(&state, record, input.tag_key_list.unwrap_or_default()).await?;
    Ok(AwsJson(Empty {}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceInput {
    pub next_token: Option<String>,
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
}

impl Input for ListTagsForResourceInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            "nextToken",
            self.next_token.as_deref(),
            &v::LIST_STREAMS_NEXT_TOKEN_RULE,
        );
        v.required("resourceARN", &self.resource_arn);
        v.string(
            "resourceARN",
            self.resource_arn.as_deref(),
            &v::RESOURCE_ARN_RULE,
        );
    }
}

/// `POST /ListTagsForResource` (a map, like ListTagsForStream).
pub async fn list_tags_for_resource(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<ListTagsForResourceInput>,
) -> Result<AwsJson<ListTagsOutput>> {
    let record = stream_by_arn(&state, input.resource_arn.as_deref().unwrap_or_default()).await?;
    Ok(AwsJson(ListTagsOutput { tags: record.tags }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_streams_token_round_trip() {
        let token = encode_list_streams_token("cam-1.a_b");
        assert!(v::LIST_STREAMS_NEXT_TOKEN.matches(&token));
        assert_eq!(decode_list_streams_token(&token).unwrap(), "cam-1.a_b");
        assert!(decode_list_streams_token("!!!").is_err());
        assert!(decode_list_streams_token("").is_err());
    }

    #[test]
    fn versions_fit_the_model() {
        let version = new_version();
        assert!(v::VERSION.matches(&version));
        assert!(version.len() <= 64);
        assert_ne!(version, new_version());
    }
}
