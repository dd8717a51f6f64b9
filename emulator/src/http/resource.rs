//! Resource requests: Kubernetes' resource URL scheme and verbs mapped onto the in-process
//! API, with the control API's faults and the request hook consulted first.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::json;

use super::body::{content_type, decode_apply, decode_body};
use super::logs::pod_log;
use super::query::{Query, WriteKind, delete_options, list_options, write_options};
use super::response::{
    Shape, json_bytes_response, json_response, ok, partial, partial_list, shape, with_objects,
    written,
};
use super::watch::{expired_watch, watch_response};
use super::{RequestInfo, ServerState};
use crate::api::{DeleteOptions, DeleteResult, Sub};
use crate::discovery;
use crate::error::ApiError;
use crate::patch::{PATCH_TYPES, PatchType};
use crate::registry::ResourceType;
use crate::table::table;

/// A request for a resource: the URL parsed, the verb chosen, faults and the request hook
/// consulted, then the in-process API called.
#[allow(clippy::too_many_arguments)]
pub(super) async fn resource(
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
    // What Kubernetes serves nothing at: its built-in groups' web services answer with a
    // Status; for other groups the custom resource handler passes the request on to the
    // plain-text 404 at the end of the handler chain.
    let builtin_group =
        group.is_empty() || api.registry().all().any(|t| t.group == group && !t.custom);
    let missing = || {
        if builtin_group {
            ApiError::no_route()
        } else {
            ApiError::page_not_found()
        }
    };
    if rest.is_empty() {
        let reg = api.registry();
        let list = discovery::resource_list(&reg, group, version).ok_or_else(missing)?;
        return ok(200, &list);
    }
    let ResourcePath {
        legacy_watch,
        ns,
        resource,
        name,
        sub,
    } = ResourcePath::parse(rest).map_err(|_| missing())?;
    let rt = api
        .resolve(group, version, resource)
        .map_err(|_| missing())?;
    if ns.is_some() && !rt.namespaced {
        return Err(missing());
    }
    if name.is_some() && rt.namespaced && ns.is_none() {
        return Err(missing());
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
        inject_faults(state, &info).await?;
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
        // The custom resource handler answers an unknown subresource with the object's 404.
        Some(_) if rt.custom => {
            return Err(ApiError::not_found(
                group,
                resource,
                name.unwrap_or_default(),
            ));
        }
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
    inject_faults(state, &info).await?;
    let hook = state.hook.read().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(hook) = hook {
        let outcome = hook.on_request(&info);
        if let Some(d) = outcome.delay {
            tokio::time::sleep(d).await;
        }
        if let Some(e) = outcome.fail {
            tracing::info!(target: "emulator::http", ?info, code = e.code, "injected fault");
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
            match (shape(headers), subres) {
                (Shape::Table, Sub::Main) => {
                    let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
                    ok(
                        200,
                        &with_objects(table(&rt, std::slice::from_ref(&obj), meta), &[obj], &q),
                    )
                }
                (Shape::Metadata, Sub::Main) => ok(200, &partial(&obj)),
                _ => ok(200, &obj),
            }
        }
        "list" => {
            let lo = list_options(&q)?;
            match shape(headers) {
                Shape::Object => Ok(json_bytes_response(200, api.list_json(&rt, ns, &lo)?)),
                Shape::Table => {
                    let list = api.list(&rt, ns, &lo)?;
                    let items = list["items"].as_array().cloned().unwrap_or_default();
                    let t = table(&rt, &items, list["metadata"].clone());
                    ok(200, &with_objects(t, &items, &q))
                }
                Shape::Metadata => ok(200, &partial_list(&api.list(&rt, ns, &lo)?)),
            }
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
            watch_response(state, rt, ns, lo, timeout, shape(headers))
        }
        "create" => {
            let opts = write_options(&q, headers, WriteKind::Create)?;
            let obj = decode_body(headers, &body)?;
            let r = api.create(&rt, nsv, obj, &opts)?;
            Ok(json_response(201, &r.object, &r.warnings))
        }
        "update" => {
            let opts = write_options(&q, headers, WriteKind::Update)?;
            let obj = decode_body(headers, &body)?;
            written(api.update(&rt, nsv, name.unwrap_or_default(), subres, obj, &opts)?)
        }
        "patch" => {
            let ct = content_type(headers);
            let ptype = PatchType::from_content_type(&ct)
                .ok_or_else(|| ApiError::unsupported_media_type(&ct, PATCH_TYPES))?;
            let kind = if ptype == PatchType::Apply {
                WriteKind::Apply
            } else {
                WriteKind::Patch
            };
            let mut opts = write_options(&q, headers, kind)?;
            let patch = if ptype == PatchType::Apply {
                let (config, duplicates) = decode_apply(&body)?;
                opts.duplicate_keys = duplicates;
                config
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    ApiError::bad_request(format!(
                        "the body of the request could not be decoded as JSON: {e}"
                    ))
                })?
            };
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

/// The part of a resource URL after `/api/v1` or `/apis/{group}/{version}`.
struct ResourcePath<'a> {
    /// The deprecated `watch/` prefix.
    legacy_watch: bool,
    ns: Option<&'a str>,
    resource: &'a str,
    name: Option<&'a str>,
    sub: Option<&'a str>,
}

impl<'a> ResourcePath<'a> {
    /// `[watch/][namespaces/{ns}/]{resource}[/{name}[/{sub}]]`, where `namespaces/{ns}/status`
    /// and `namespaces/{ns}/finalize` are a namespace's own subresources.
    fn parse(rest: &[&'a str]) -> Result<Self, ApiError> {
        let (legacy_watch, rest) = match rest {
            ["watch", tail @ ..] => (true, tail),
            _ => (false, rest),
        };
        let (ns, resource, name, sub) = match rest {
            ["namespaces", ns, res, tail @ ..]
                if !(tail.is_empty() && matches!(*res, "status" | "finalize")) =>
            {
                match tail {
                    [] => (Some(*ns), *res, None, None),
                    [name] => (Some(*ns), *res, Some(*name), None),
                    [name, sub] => (Some(*ns), *res, Some(*name), Some(*sub)),
                    _ => return Err(ApiError::no_route()),
                }
            }
            [res] => (None, *res, None, None),
            [res, name] => (None, *res, Some(*name), None),
            [res, name, sub] => (None, *res, Some(*name), Some(*sub)),
            _ => return Err(ApiError::no_route()),
        };
        Ok(ResourcePath {
            legacy_watch,
            ns,
            resource,
            name,
            sub,
        })
    }
}

/// The faults the control API installed for this request: its delay, then its error.
async fn inject_faults(state: &ServerState, info: &RequestInfo) -> Result<(), ApiError> {
    let (delay, fail) = state.control.decide(info);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    match fail {
        Some(e) => Err(e),
        None => Ok(()),
    }
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
