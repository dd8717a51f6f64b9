//! Request parameters: path segments and query strings, and the API's write, list and
//! delete options read from them (and from a DeleteOptions body).

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::body::decode_body;
use crate::api::{DeleteOptions, FieldValidation, ListOptions, WriteOptions};
use crate::error::{ApiError, Cause};

/// Decodes `%xx` escapes of a path segment; malformed escapes stay as they are.
pub(super) fn percent_decode(s: &str) -> String {
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
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a query string.
    pub(super) fn parse(q: &str) -> Self {
        Query(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }

    /// The last value of a parameter.
    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a parameter, in order.
    pub(super) fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean parameter (`true`/`1`, `false`/`0`/empty; 400 otherwise).
    pub(super) fn flag(&self, k: &str) -> Result<bool, ApiError> {
        match self.get(k) {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value for {k}: {other:?}"
            ))),
        }
    }
}

/// The field manager of a write that names none: the client's product, as Kubernetes takes
/// it from the user agent (printable characters, at most 128 bytes; `unknown` if none).
fn default_manager(headers: &HeaderMap) -> String {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let mut m = String::new();
    for c in ua.split('/').next().unwrap_or_default().chars() {
        if c.is_control() {
            continue;
        }
        if m.len() + c.len_utf8() > 128 {
            break;
        }
        m.push(c);
    }
    if m.is_empty() { "unknown".into() } else { m }
}

/// `dryRun` values other than `All` (`ValidateDryRun`).
fn check_dry_run(values: &[&str], errs: &mut Vec<Cause>) {
    if values.iter().any(|v| *v != "All") {
        errs.push(Cause::not_supported(
            "dryRun",
            &json!(values),
            &[json!("All")],
        ));
    }
}

/// The kind of options a write's query string carries, and whether it is an apply.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteKind {
    /// `CreateOptions` (POST).
    Create,
    /// `UpdateOptions` (PUT).
    Update,
    /// `PatchOptions` of a JSON, merge or strategic merge patch.
    Patch,
    /// `PatchOptions` of a server-side apply.
    Apply,
}

/// `dryRun`, `fieldManager`, `force` and `fieldValidation` of a write, checked as Kubernetes'
/// `Validate{Create,Update,Patch}Options` do (a 422 on the options kind).
pub(super) fn write_options(
    q: &Query,
    headers: &HeaderMap,
    kind: WriteKind,
) -> Result<WriteOptions, ApiError> {
    let mut errs = Vec::new();
    let dry_run = q.all("dryRun");
    check_dry_run(&dry_run, &mut errs);
    let field_validation = match q.get("fieldValidation") {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            errs.push(Cause::not_supported(
                "fieldValidation",
                &json!(other),
                &[json!(""), json!("Ignore"), json!("Strict"), json!("Warn")],
            ));
            FieldValidation::Warn
        }
    };
    let manager = q.get("fieldManager").unwrap_or_default();
    if manager.len() > 128 {
        errs.push(Cause::too_long(
            "fieldManager",
            "may not be more than 128 bytes",
        ));
    }
    for (i, c) in manager.char_indices() {
        if c.is_control() {
            errs.push(Cause::invalid(
                "fieldManager",
                &json!(manager),
                &format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    let force = q.get("force").is_some();
    match kind {
        WriteKind::Apply if manager.is_empty() => {
            errs.push(Cause::required(
                "fieldManager",
                "is required for apply patch",
            ));
        }
        WriteKind::Patch if force => errs.push(Cause::forbidden(
            "force",
            "may not be specified for non-apply patch",
        )),
        _ => {}
    }
    if !errs.is_empty() {
        let options = match kind {
            WriteKind::Create => "CreateOptions",
            WriteKind::Update => "UpdateOptions",
            WriteKind::Patch | WriteKind::Apply => "PatchOptions",
        };
        return Err(ApiError::invalid("meta.k8s.io", options, "", errs));
    }
    Ok(WriteOptions {
        dry_run: !dry_run.is_empty(),
        field_manager: Some(if manager.is_empty() {
            default_manager(headers)
        } else {
            manager.to_string()
        }),
        force: q.flag("force")?,
        field_validation,
        // Read with the body, which comes after.
        duplicate_keys: Vec::new(),
    })
}

/// The selectors, chunking and resourceVersion parameters of a list or watch.
pub(super) fn list_options(q: &Query) -> Result<ListOptions, ApiError> {
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

/// A delete's options, from its DeleteOptions body and query parameters (which win).
pub(super) fn delete_options(
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<DeleteOptions, ApiError> {
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
    let dry_run = q.all("dryRun");
    let mut errs = Vec::new();
    check_dry_run(&dry_run, &mut errs);
    if !errs.is_empty() {
        return Err(ApiError::invalid("meta.k8s.io", "DeleteOptions", "", errs));
    }
    o.dry_run |= !dry_run.is_empty();
    if q.get("orphanDependents") == Some("true") && o.propagation.is_none() {
        o.propagation = Some("Orphan".into());
    }
    Ok(o)
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
}
