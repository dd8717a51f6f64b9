//! Request parameters: path segments and query strings, and the API's write, list and
//! delete options read from them (and from a DeleteOptions body).

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use serde_json::Value;

use super::body::decode_body;
use crate::api::{DeleteOptions, FieldValidation, ListOptions, WriteOptions};
use crate::error::ApiError;

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
/// it from the user agent.
fn default_manager(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// `dryRun`, `fieldManager`, `force` and `fieldValidation` of a write.
pub(super) fn write_options(q: &Query, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
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
