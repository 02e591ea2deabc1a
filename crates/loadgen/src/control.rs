//! The control-plane calls a producer and a viewer make: signed JSON POSTs, as the AWS SDKs send them.

use serde_json::{json, Value};
use std::time::SystemTime;

pub struct Control {
    pub client: reqwest::Client,
    pub endpoint: reqwest::Url,
    pub credentials: sigv4::Credentials,
    pub region: String,
}

/// A failed call: the AWS error type (`x-amzn-ErrorType`, else the HTTP status) or the transport error.
#[derive(Debug)]
pub struct CallError(pub String);

impl Control {
    /// POSTs `body` to `{base}/{operation}` signed for `kinesisvideo`; the parsed JSON answer.
    pub async fn call(
        &self,
        base: &reqwest::Url,
        operation: &str,
        body: Value,
    ) -> Result<Value, CallError> {
        let mut url = base.clone();
        url.set_path(&format!(
            "{}/{operation}",
            base.path().trim_end_matches('/')
        ));
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let text = body.to_string();
        let headers = openkvs::client::sign_request(
            &host,
            url.path(),
            &text,
            &self.credentials,
            &self.region,
            sigv4::SERVICE,
            SystemTime::now(),
        );
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(text);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| CallError(e.to_string()))?;
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_owned());
        let answer = response
            .bytes()
            .await
            .map_err(|e| CallError(e.to_string()))?;
        if !status.is_success() {
            return Err(CallError(
                error_type.unwrap_or_else(|| status.as_u16().to_string()),
            ));
        }
        serde_json::from_slice(&answer).map_err(|e| CallError(format!("{operation}: {e}")))
    }

    /// CreateStream; an existing stream of that name will do.
    pub async fn create_stream(&self, name: &str, retention_hours: u32) -> Result<(), CallError> {
        let body = json!({"StreamName": name, "DataRetentionInHours": retention_hours, "MediaType": "video/h264"});
        match self.call(&self.endpoint, "createStream", body).await {
            Err(CallError(kind)) if kind == "ResourceInUseException" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// GetDataEndpoint, then GetHLSStreamingSessionURL (LIVE, fMP4) at that endpoint.
    pub async fn live_session_url(&self, stream: &str) -> Result<String, CallError> {
        let answer = self
            .call(
                &self.endpoint,
                "getDataEndpoint",
                json!({"StreamName": stream, "APIName": "GET_HLS_STREAMING_SESSION_URL"}),
            )
            .await?;
        let data_endpoint = answer["DataEndpoint"]
            .as_str()
            .and_then(|url| reqwest::Url::parse(url).ok())
            .ok_or_else(|| {
                CallError("GetDataEndpoint answered without a DataEndpoint URL".into())
            })?;
        let answer = self
            .call(
                &data_endpoint,
                "getHLSStreamingSessionURL",
                json!({"StreamName": stream, "PlaybackMode": "LIVE"}),
            )
            .await?;
        answer["HLSStreamingSessionURL"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| CallError("no HLSStreamingSessionURL".into()))
    }
}
