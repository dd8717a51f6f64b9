//! The HTTP layer: Kubernetes' URL scheme, query parameters, content types and watch streams
//! mapped onto the in-process [`Api`].

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::{
    Api, DeleteOptions, DeleteResult, FieldValidation, ListOptions, Sub, WatchItem, WriteOptions,
    WriteResult, watch_line,
};
use crate::discovery;
use crate::error::ApiError;
use crate::patch::{PATCH_TYPES, PatchType};
use crate::registry::ResourceType;
use crate::table::table;

/// Kubernetes' default limit on request bodies.
const MAX_BODY: usize = 3 * 1024 * 1024;

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

fn json_response(code: u16, body: &Value, warnings: &[String]) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        let v = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = HeaderValue::from_str(&v) {
            resp.headers_mut().append("Warning", h);
        }
    }
    resp
}

fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.to_status(), &[]);
    if let Some(s) = e.details.retry_after
        && let Ok(h) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, h);
    }
    r
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

/// Reads a request body up to [`MAX_BODY`]. A larger body is drained (up to a bound) before
/// the 413 answer, so the client reliably reads the answer instead of a reset connection.
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    const MAX_DRAIN: usize = 64 * 1024 * 1024;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("error reading the request body: {e}")))?;
        total += chunk.len();
        if total <= MAX_BODY {
            buf.extend_from_slice(&chunk);
        } else if total > MAX_DRAIN {
            break;
        }
    }
    if total > MAX_BODY {
        return Err(ApiError::too_large(
            "the request body exceeds the 3 MiB limit",
        ));
    }
    Ok(Bytes::from(buf))
}

fn decode_segment(s: &str) -> String {
    percent_decode(s)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters, last value wins.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Self {
        Query(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> Result<bool, ApiError> {
        match self.get(k) {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value for {k}: {other:?}"
            ))),
        }
    }
}

fn accepts_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io"))
        })
}

fn default_manager(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn write_options(q: &Query, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
    let dry_run = match q.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
            )));
        }
    };
    let field_validation = match q.get("fieldValidation") {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
    };
    Ok(WriteOptions {
        dry_run,
        field_manager: Some(
            q.get("fieldManager")
                .map(str::to_string)
                .unwrap_or_else(|| default_manager(headers)),
        ),
        force: q.flag("force")?,
        field_validation,
    })
}

fn list_options(q: &Query) -> Result<ListOptions, ApiError> {
    let limit = match q.get("limit") {
        None | Some("") => None,
        Some(l) => Some(
            l.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
                .max(0) as usize,
        ),
    };
    let send_initial_events = match q.get("sendInitialEvents") {
        None | Some("") => None,
        Some(_) => Some(q.flag("sendInitialEvents")?),
    };
    Ok(ListOptions {
        label_selector: q.get("labelSelector").map(str::to_string),
        field_selector: q.get("fieldSelector").map(str::to_string),
        limit,
        continue_token: q.get("continue").map(str::to_string),
        resource_version: q.get("resourceVersion").map(str::to_string),
        resource_version_match: q
            .get("resourceVersionMatch")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        allow_bookmarks: q.flag("allowWatchBookmarks")?,
        send_initial_events,
    })
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a JSON (or YAML) request body into an object.
fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    match ct.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        }),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body),
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(body).map_err(|e| {
            let mut err = ApiError::unsupported_media_type(
                "application/vnd.kubernetes.protobuf",
                &["application/json", "application/yaml"],
            );
            err.message = format!("{}: {e}", err.message);
            err
        }),
        other => Err(ApiError::unsupported_media_type(
            other,
            &["application/json", "application/yaml"],
        )),
    }
}

fn decode_yaml(body: &Bytes) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body is not valid UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

fn delete_options(q: &Query, headers: &HeaderMap, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let mut o = DeleteOptions::default();
    let trimmed = body.iter().any(|b| !b.is_ascii_whitespace());
    if trimmed {
        let v = decode_body(headers, body)?;
        if !v.is_object() {
            return Err(ApiError::bad_request("DeleteOptions must be an object"));
        }
        o.propagation = v
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string);
        if o.propagation.is_none()
            && let Some(orphan) = v.get("orphanDependents").and_then(Value::as_bool)
        {
            o.propagation = Some(if orphan { "Orphan" } else { "Background" }.into());
        }
        if let Some(p) = v.get("preconditions") {
            o.uid = p.get("uid").and_then(Value::as_str).map(str::to_string);
            o.resource_version = p
                .get("resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if let Some(Value::Array(d)) = v.get("dryRun") {
            o.dry_run = d.iter().any(|x| x == "All");
        }
    }
    if let Some(p) = q.get("propagationPolicy") {
        o.propagation = Some(p.to_string());
    }
    if let Some(d) = q.get("dryRun") {
        if d != "All" && !d.is_empty() {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: \"{d}\": supported values: \"All\""
            )));
        }
        o.dry_run |= d == "All";
    }
    if q.get("orphanDependents") == Some("true") && o.propagation.is_none() {
        o.propagation = Some("Orphan".into());
    }
    Ok(o)
}

fn ok(code: u16, v: &Value) -> Result<Response, ApiError> {
    Ok(json_response(code, v, &[]))
}

fn written(r: WriteResult) -> Result<Response, ApiError> {
    Ok(json_response(
        if r.created { 201 } else { 200 },
        &r.object,
        &r.warnings,
    ))
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
        .map(decode_segment)
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
        ["apis", g] => get_only(discovery::api_group(&reg, g).ok_or_else(ApiError::no_route)?),
        ["openapi", "v2"] => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if accept.contains("protobuf") {
                let mut r = Response::new(Body::from(discovery::openapi_v2_protobuf()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    ),
                );
                return Ok(r);
            }
            get_only(discovery::openapi_v2(&reg))
        }
        ["openapi", "v3"] => get_only(discovery::openapi_v3_root(&reg)),
        ["openapi", "v3", "api", v] => {
            get_only(discovery::openapi_v3_gv(&reg, "", v).ok_or_else(ApiError::no_route)?)
        }
        ["openapi", "v3", "apis", g, v] => {
            get_only(discovery::openapi_v3_gv(&reg, g, v).ok_or_else(ApiError::no_route)?)
        }
        ["api", "v1", rest @ ..] => {
            resource(state, method, "", "v1", rest, query, headers, body).await
        }
        ["api", v, ..] => {
            Err(ApiError::not_found("", "version", v)).map_err(|_| ApiError::no_route())
        }
        ["apis", g, v, rest @ ..] => {
            resource(state, method, g, v, rest, query, headers, body).await
        }
        _ => Err(ApiError::no_route()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    state: &Arc<ServerState>,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let api = &state.api;
    if rest.is_empty() {
        let reg = api.registry();
        let list =
            crate::discovery::resource_list(&reg, group, version).ok_or_else(ApiError::no_route)?;
        return ok(200, &list);
    }
    let mut rest = rest;
    let mut legacy_watch = false;
    if rest.first() == Some(&"watch") {
        legacy_watch = true;
        rest = &rest[1..];
    }
    // `namespaces/{ns}/{resource}...` unless it is a namespace's own subresource.
    let (ns, resource, name, sub): (Option<&str>, &str, Option<&str>, Option<&str>) = match rest {
        ["namespaces", ns, res, tail @ ..]
            if !(tail.is_empty() && matches!(*res, "status" | "finalize")) =>
        {
            match tail {
                [] => (Some(ns), res, None, None),
                [name] => (Some(ns), res, Some(name), None),
                [name, sub] => (Some(ns), res, Some(name), Some(sub)),
                _ => return Err(ApiError::no_route()),
            }
        }
        [res] => (None, res, None, None),
        [res, name] => (None, res, Some(name), None),
        [res, name, sub] => (None, res, Some(name), Some(sub)),
        _ => return Err(ApiError::no_route()),
    };
    let rt = api.resolve(group, version, resource)?;
    if ns.is_some() && !rt.namespaced {
        return Err(ApiError::no_route());
    }
    if name.is_some() && rt.namespaced && ns.is_none() {
        return Err(ApiError::no_route());
    }
    if group.is_empty() && resource == "pods" && sub == Some("log") {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed());
        }
        let info = RequestInfo {
            verb: "get".into(),
            version: version.to_string(),
            resource: "pods".into(),
            subresource: "log".into(),
            namespace: ns.unwrap_or_default().to_string(),
            name: name.unwrap_or_default().to_string(),
            ..Default::default()
        };
        let (delay, fail) = state.control.decide(&info);
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if let Some(e) = fail {
            return Err(e);
        }
        return pod_log(
            api,
            ns.unwrap_or_default(),
            name.unwrap_or_default(),
            &Query::parse(query),
        );
    }
    let subres = match sub {
        None => Sub::Main,
        Some("status") if rt.status => Sub::Status,
        Some("scale") if rt.scale.is_some() => Sub::Scale,
        Some(_) => return Err(ApiError::no_route()),
    };
    let q = Query::parse(query);
    let watch = legacy_watch || q.flag("watch")?;
    let verb = match (method.as_str(), name.is_some(), watch) {
        ("GET", _, true) => "watch",
        ("GET", false, false) => "list",
        ("GET", true, false) => "get",
        ("POST", false, _) => "create",
        ("PUT", true, _) => "update",
        ("PATCH", true, _) => "patch",
        ("DELETE", true, _) => "delete",
        ("DELETE", false, _) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed()),
    };
    if subres != Sub::Main && !matches!(verb, "get" | "update" | "patch") {
        return Err(ApiError::method_not_allowed());
    }
    let info = RequestInfo {
        verb: verb.to_string(),
        group: group.to_string(),
        version: version.to_string(),
        resource: resource.to_string(),
        subresource: sub.unwrap_or_default().to_string(),
        namespace: ns.unwrap_or_default().to_string(),
        name: name.unwrap_or_default().to_string(),
        impersonate_user: headers
            .get("impersonate-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    };
    let (delay, fail) = state.control.decide(&info);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let Some(e) = fail {
        return Err(e);
    }
    let hook = state.hook.read().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(hook) = hook {
        let outcome = hook.on_request(&info);
        if let Some(d) = outcome.delay {
            tokio::time::sleep(d).await;
        }
        if let Some(e) = outcome.fail {
            tracing::info!(?info, code = e.code, "injected fault");
            return Err(e);
        }
    }
    let nsv = ns.unwrap_or("");
    match verb {
        "get" => {
            let name = name.unwrap_or_default();
            let obj = match subres {
                Sub::Scale => api.get_scale(&rt, nsv, name)?,
                _ => api.get(&rt, nsv, name)?,
            };
            if accepts_table(headers) && subres == Sub::Main {
                let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
                return ok(
                    200,
                    &with_objects(table(&rt, std::slice::from_ref(&obj), meta), &[obj], &q),
                );
            }
            ok(200, &obj)
        }
        "list" => {
            let lo = list_options(&q)?;
            let list = api.list(&rt, ns, &lo)?;
            if accepts_table(headers) {
                let items = list["items"].as_array().cloned().unwrap_or_default();
                let t = table(&rt, &items, list["metadata"].clone());
                return ok(200, &with_objects(t, &items, &q));
            }
            ok(200, &list)
        }
        "watch" => {
            let mut lo = list_options(&q)?;
            if let Some(n) = name {
                let extra = format!("metadata.name={n}");
                lo.field_selector =
                    Some(match lo.field_selector.take().filter(|f| !f.is_empty()) {
                        Some(f) => format!("{f},{extra}"),
                        None => extra,
                    });
            }
            let timeout =
                // As in Kubernetes, an absent or zero timeout means the server default.
                match q.get("timeoutSeconds") {
                    None | Some("") | Some("0") => Duration::from_secs(1800),
                    Some(t) => Duration::from_secs(t.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!("invalid timeoutSeconds {t:?}"))
                    })?),
                };
            if state.control.take_watch_expiry(&info) {
                return Ok(expired_watch(&state.api));
            }
            watch_response(state, rt, ns, lo, timeout, accepts_table(headers))
        }
        "create" => {
            let obj = decode_body(headers, &body)?;
            let opts = write_options(&q, headers)?;
            let r = api.create(&rt, nsv, obj, &opts)?;
            Ok(json_response(201, &r.object, &r.warnings))
        }
        "update" => {
            let obj = decode_body(headers, &body)?;
            let opts = write_options(&q, headers)?;
            written(api.update(&rt, nsv, name.unwrap_or_default(), subres, obj, &opts)?)
        }
        "patch" => {
            let ct = content_type(headers);
            let ptype = PatchType::from_content_type(&ct)
                .ok_or_else(|| ApiError::unsupported_media_type(&ct, PATCH_TYPES))?;
            let patch = if ptype == PatchType::Apply {
                decode_yaml(&body)?
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    ApiError::bad_request(format!(
                        "the body of the request could not be decoded as JSON: {e}"
                    ))
                })?
            };
            let opts = write_options(&q, headers)?;
            written(api.patch(
                &rt,
                nsv,
                name.unwrap_or_default(),
                subres,
                ptype,
                patch,
                &opts,
            )?)
        }
        "delete" => {
            let opts = delete_options(&q, headers, &body)?;
            let warnings = job_delete_warning(&rt, &opts);
            match api.delete(&rt, nsv, name.unwrap_or_default(), &opts)? {
                DeleteResult::Deleted(status) => Ok(json_response(200, &status, &warnings)),
                DeleteResult::Pending(obj) => Ok(json_response(200, &obj, &warnings)),
            }
        }
        "deletecollection" => {
            let opts = delete_options(&q, headers, &body)?;
            let warnings = job_delete_warning(&rt, &opts);
            let lo = list_options(&q)?;
            Ok(json_response(
                200,
                &api.delete_collection(&rt, ns, &lo, &opts)?,
                &warnings,
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// `pods/{name}/log`: no container runs in the emulator, so a container's log holds only its
/// termination message once it has ended; the errors are Kubernetes' (no such container, a
/// container name needed, a container still waiting).
fn pod_log(api: &Api, ns: &str, name: &str, q: &Query) -> Result<Response, ApiError> {
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

/// Kubernetes warns when a batch/v1 Job is deleted without a propagation policy: the
/// default orphans its pods.
fn job_delete_warning(rt: &ResourceType, opts: &DeleteOptions) -> Vec<String> {
    if rt.group == "batch"
        && rt.version == "v1"
        && rt.resource == "jobs"
        && opts.propagation.is_none()
    {
        return vec![
            "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning".to_string(),
        ];
    }
    Vec::new()
}

fn with_objects(mut t: Value, objects: &[Value], q: &Query) -> Value {
    if q.get("includeObject") == Some("Object")
        && let Some(rows) = t.get_mut("rows").and_then(Value::as_array_mut)
    {
        for (row, obj) in rows.iter_mut().zip(objects) {
            row["object"] = obj.clone();
        }
    }
    if q.get("includeObject") == Some("None")
        && let Some(rows) = t.get_mut("rows").and_then(Value::as_array_mut)
    {
        for row in rows.iter_mut() {
            if let Some(m) = row.as_object_mut() {
                m.remove("object");
            }
        }
    }
    t
}

struct WatchState {
    initial: VecDeque<String>,
    rx: tokio::sync::broadcast::Receiver<Arc<crate::store::Event>>,
    filter: crate::api::Filter,
    rt: Arc<ResourceType>,
    last_rv: u64,
    bookmarks: Option<tokio::time::Interval>,
    deadline: tokio::time::Instant,
    cut: tokio::sync::watch::Receiver<u64>,
    pause: tokio::sync::watch::Receiver<Option<crate::control::PauseMode>>,
    as_table: bool,
}

/// One watch line; `kubectl get -w` watches Tables, so each event then carries a one-row Table.
fn event_line(rt: &ResourceType, item: &WatchItem, as_table: bool) -> String {
    if as_table && matches!(item.kind, "ADDED" | "MODIFIED" | "DELETED") {
        let rv = item
            .object
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(json!(""));
        let t = table(
            rt,
            std::slice::from_ref(&item.object),
            json!({"resourceVersion": rv}),
        );
        return watch_line(&WatchItem {
            kind: item.kind,
            object: t,
        });
    }
    watch_line(item)
}

/// A watch answered as Kubernetes' watch cache answers a compacted resourceVersion: one
/// `ERROR` event carrying a 410 `Expired` Status, then the end of the stream.
fn expired_watch(api: &Api) -> Response {
    let rv = api.current_rv();
    let status =
        ApiError::expired(format!("too old resource version: {rv} ({})", rv + 1)).to_status();
    let line = watch_line(&WatchItem {
        kind: "ERROR",
        object: status,
    });
    let mut resp = Response::new(Body::from(line));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn watch_response(
    state: &Arc<ServerState>,
    rt: Arc<ResourceType>,
    ns: Option<&str>,
    lo: ListOptions,
    timeout: Duration,
    as_table: bool,
) -> Result<Response, ApiError> {
    let (w, filter) = state.api.watch(&rt, ns, &lo)?;
    let mut initial: VecDeque<String> = w
        .initial
        .iter()
        .map(|i| event_line(&rt, i, as_table))
        .collect();
    if w.initial_end_bookmark {
        initial.push_back(watch_line(&Api::bookmark(&rt, w.rv, true)));
    }
    let bookmarks = lo.allow_bookmarks.then(|| {
        let mut i = tokio::time::interval_at(
            tokio::time::Instant::now() + state.bookmark_interval,
            state.bookmark_interval,
        );
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let cut = state.control.watch_cuts();
    let pause = state.control.pause_watch();
    let st = WatchState {
        initial,
        rx: w.rx,
        filter,
        rt,
        last_rv: w.rv,
        bookmarks,
        deadline: tokio::time::Instant::now() + timeout,
        cut,
        pause,
        as_table,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        let line = match st.initial.pop_front() {
            Some(line) => line,
            None => loop {
                tokio::select! {
                    r = st.rx.recv() => match r {
                        Ok(e) => {
                            st.last_rv = st.last_rv.max(e.rv);
                            if let Some(item) = st.filter.apply(&e) {
                                break if st.as_table { event_line(&st.rt, &item, true) } else { st.filter.line(&e, &item) };
                            }
                        }
                        // A watcher this far behind is closed; the client re-lists, as with Kubernetes.
                        Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                    },
                    _ = async { match st.bookmarks.as_mut() { Some(i) => { i.tick().await; } None => std::future::pending::<()>().await } } => {
                        break watch_line(&Api::bookmark(&st.rt, st.last_rv, false));
                    }
                    _ = tokio::time::sleep_until(st.deadline) => return None,
                    _ = st.cut.changed() => return None,
                }
            },
        };
        // A paused server sends nothing, on open watches too: the event waits for the resume.
        while st.pause.borrow_and_update().is_some() {
            tokio::select! {
                r = st.pause.changed() => if r.is_err() { return None },
                _ = st.cut.changed() => return None,
            }
        }
        Some((Ok::<_, std::io::Error>(Bytes::from(line)), st))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn table_accept_header() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            ),
        );
        assert!(accepts_table(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!accepts_table(&h));
    }
}
