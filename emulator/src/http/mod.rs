//! The HTTP layer: Kubernetes' URL scheme, query parameters, content types and watch streams
//! mapped onto the in-process [`Api`]. This module is the entry: authentication, the control
//! API, pauses, and routing by path.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::api::Api;
use crate::error::ApiError;
use crate::{discovery, openapi};

mod body;
mod logs;
mod query;
mod resource;
mod response;
mod watch;

use body::read_body;
use query::percent_decode;
use resource::resource;
use response::{error_response, json_response, ok};

/// What a request addresses, as a fault-injection hook sees it.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestInfo {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource, if any.
    pub subresource: String,
    /// Namespace, if any.
    pub namespace: String,
    /// Object name, if any.
    pub name: String,
    /// The `Impersonate-User` header, if any: who the request acts as. The
    /// emulator enforces no RBAC, but a hook can check a user's requests
    /// against the roles it would need.
    pub impersonate_user: String,
}

/// What a hook decides for a request.
#[derive(Debug, Clone, Default)]
pub struct HookOutcome {
    /// Wait this long before handling the request.
    pub delay: Option<Duration>,
    /// Answer with this error instead of handling the request.
    pub fail: Option<ApiError>,
}

/// A hook consulted before every resource request (fault injection, request counting).
pub trait RequestHook: Send + Sync {
    /// Decides what happens to one request.
    fn on_request(&self, info: &RequestInfo) -> HookOutcome;
}

/// State shared by every request of one server.
pub struct ServerState {
    /// The API.
    pub api: Arc<Api>,
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// `host:port`, for `/api`'s server address.
    pub addr: String,
    /// How often watches with `allowWatchBookmarks` get a bookmark.
    pub bookmark_interval: Duration,
    /// Optional request hook.
    pub hook: RwLock<Option<Arc<dyn RequestHook>>>,
    /// Faults, pauses and the simulated cluster's behaviour.
    pub control: Arc<crate::control::Control>,
}

/// The axum handler for every path.
pub async fn handle(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let headers = req.headers().clone();
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    tracing::trace!(%method, %path, %query, "request");
    let public = matches!(
        path.trim_end_matches('/'),
        "/healthz" | "/livez" | "/readyz" | "/version"
    ) || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/");
    if let Some(token) = &state.token
        && !public
    {
        let ok = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| t == token);
        if !ok {
            return error_response(&ApiError::unauthorized());
        }
    }
    let body = match read_body(req.into_body()).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let control_path = path
        .strip_prefix(crate::control::PREFIX)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'));
    if let Some(rest) = control_path {
        // The control API answers even while the server is paused, so a test can resume it.
        return match crate::control::handle(&state.control, method.as_str(), rest, &body) {
            Ok((code, v)) => json_response(code, &v, &[]),
            Err(e) => error_response(&e),
        };
    }
    wait_while_paused(&state.control).await;
    let result = route(&state, &method, &path, &query, &headers, body).await;
    match result {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code, reason = e.reason, "request failed");
            error_response(&e)
        }
    }
}

/// Holds a request while the server is paused (a refusing pause also drops the connection).
async fn wait_while_paused(control: &crate::control::Control) {
    let mut pause = control.pause_watch();
    while pause.borrow_and_update().is_some() {
        if pause.changed().await.is_err() {
            return;
        }
    }
}

async fn route(
    state: &Arc<ServerState>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let reg = state.api.registry();
    let get_only = |v: Value| -> Result<Response, ApiError> {
        if method != Method::GET && method != Method::HEAD {
            return Err(ApiError::method_not_allowed());
        }
        ok(200, &v)
    };
    match s.as_slice() {
        ["version"] => get_only(discovery::version()),
        ["healthz" | "livez" | "readyz", ..] => {
            let mut r = "ok".into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(r)
        }
        ["api"] => get_only(discovery::api_versions(&state.addr)),
        ["apis"] => get_only(discovery::api_groups(&reg)),
        // Built-in groups are always served, so an unknown group is one nothing claims.
        ["apis", g] => {
            get_only(discovery::api_group(&reg, g).ok_or_else(ApiError::page_not_found)?)
        }
        ["openapi", "v2"] => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if accept.contains("protobuf") {
                let mut r = Response::new(Body::from(openapi::openapi_v2_protobuf()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    ),
                );
                return Ok(r);
            }
            get_only(openapi::openapi_v2(&reg))
        }
        ["openapi", "v3"] => get_only(openapi::openapi_v3_root(&reg)),
        ["openapi", "v3", "api", v] => {
            get_only(openapi::openapi_v3_gv(&reg, "", v).ok_or_else(ApiError::no_route)?)
        }
        ["openapi", "v3", "apis", g, v] => {
            get_only(openapi::openapi_v3_gv(&reg, g, v).ok_or_else(ApiError::no_route)?)
        }
        ["api", "v1", rest @ ..] => {
            resource(state, method, "", "v1", rest, query, headers, body).await
        }
        // Kubernetes' `/api` web service claims every path below it.
        ["api", ..] => Err(ApiError::no_route()),
        ["apis", g, v, rest @ ..] => {
            resource(state, method, g, v, rest, query, headers, body).await
        }
        _ => Err(ApiError::page_not_found()),
    }
}
