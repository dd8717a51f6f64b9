//! Pod logs (`pods/{name}/log`, what `kubectl logs` reads).

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::Value;

use super::query::Query;
use crate::api::Api;
use crate::error::ApiError;

/// `pods/{name}/log`: no container runs in the emulator, so a container's log holds only its
/// termination message once it has ended; the errors are Kubernetes' (no such container, a
/// container name needed, a container still waiting).
pub(super) fn pod_log(api: &Api, ns: &str, name: &str, q: &Query) -> Result<Response, ApiError> {
    let rt = api.resolve("", "v1", "pods")?;
    let pod = api.get(&rt, ns, name)?;
    let names: Vec<String> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| pod.pointer(&format!("/spec/{l}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let regular = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let container = match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) if names.iter().any(|n| n == c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if regular == 1 => pod
            .pointer("/spec/containers/0/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let status = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|l| {
            pod.pointer(&format!("/status/{l}"))
                .and_then(Value::as_array)
        })
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(container.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(reason) = status
        .pointer("/state/waiting/reason")
        .and_then(Value::as_str)
        .or_else(|| status.is_null().then_some("ContainerCreating"))
    {
        // The kubelet's wording, image pull failures included.
        let why = match reason {
            "ErrImagePull" | "ImagePullBackOff" => "trying and failing to pull image",
            other => other,
        };
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
        )));
    }
    let mut text = status
        .pointer("/state/terminated/message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let mut resp = Response::new(Body::from(text));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}
