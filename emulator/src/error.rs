//! API errors and their `metav1.Status` form, with Kubernetes' codes, reasons and messages.

use serde_json::{Value, json};

/// One field-level cause of an `Invalid` (or conflict) error, as in `metav1.StatusCause`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// Machine-readable reason, e.g. `FieldValueInvalid`, `FieldValueRequired`.
    pub reason: String,
    /// Human-readable message (without the field path).
    pub message: String,
    /// The field path, e.g. `spec.replicas`.
    pub field: String,
}

impl Cause {
    /// A cause with the given reason, field and message.
    pub fn new(reason: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// `field: Invalid value: <value>: <detail>`, Kubernetes' `field.Invalid`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            Value::Object(_) | Value::Array(_) => "\"object\"".to_string(),
            other => other.to_string(),
        };
        let message = if detail.is_empty() {
            format!("Invalid value: {shown}")
        } else {
            format!("Invalid value: {shown}: {detail}")
        };
        Cause::new("FieldValueInvalid", field, message)
    }

    /// `field: Required value`, Kubernetes' `field.Required`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause::new("FieldValueRequired", field, message)
    }

    /// `field: Unsupported value: ...`, Kubernetes' `field.NotSupported`.
    pub fn not_supported(field: impl Into<String>, value: &Value, allowed: &[Value]) -> Self {
        let allowed: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        Cause::new(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {value}: supported values: {}",
                allowed.join(", ")
            ),
        )
    }

    /// `field: Forbidden: ...`, Kubernetes' `field.Forbidden`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Cause::new("FieldValueForbidden", field, format!("Forbidden: {detail}"))
    }

    /// `field: Too many: ...` / `Too long` style errors use `FieldValueTooMany`/`TooLong`.
    pub fn too_long(field: impl Into<String>, detail: &str) -> Self {
        Cause::new("FieldValueTooLong", field, format!("Too long: {detail}"))
    }
}

/// An error the API answers with; it becomes a `metav1.Status` response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details`, boxed to keep `Result<_, ApiError>` small.
    pub details: Box<Details>,
}

/// The `details` of a `metav1.Status`.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// `details.name`.
    pub name: Option<String>,
    /// `details.group`.
    pub group: Option<String>,
    /// `details.kind` (a resource name or a kind, as Kubernetes does per error).
    pub kind: Option<String>,
    /// `details.causes`.
    pub causes: Vec<Cause>,
    /// `details.retryAfterSeconds`.
    pub retry_after: Option<u32>,
    /// Answered as Go's `http.NotFound` does (plain text), not as a Status.
    pub plain: bool,
}

impl ApiError {
    /// A bare error with a code, reason and message.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Box::default(),
        }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details.group = Some(group.to_string()).filter(|g| !g.is_empty());
        self.details.kind = Some(kind.to_string());
        self.details.name = Some(name.to_string()).filter(|n| !n.is_empty());
        self
    }

    /// `<resource>.<group> "<name>" not found` (404 NotFound).
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// The path matches nothing the server serves (404 NotFound without details).
    pub fn no_route() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// A path no API handler claims: Kubernetes' handler chain ends in Go's
    /// `http.NotFound`, a plain-text `404 page not found` rather than a Status
    /// (apiserver/pkg/util/notfoundhandler). Unknown groups, and unknown versions and
    /// resources of groups only CRDs serve, end there.
    pub fn page_not_found() -> Self {
        let mut e = ApiError::new(404, "NotFound", "404 page not found");
        e.details.plain = true;
        e
    }

    /// `<resource>.<group> "<name>" already exists` (409 AlreadyExists).
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// A stale resourceVersion or a failed precondition (409 Conflict).
    pub fn conflict(group: &str, resource: &str, name: &str, detail: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {detail}",
                qualified(group, resource)
            ),
        )
        .with_details(group, resource, name)
    }

    /// The object was modified since the client read it.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        ApiError::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `<Kind>.<group> "<name>" is invalid: <causes>` (422 Invalid).
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {joined}", qualified(group, kind)),
        )
        .with_details(group, kind, name);
        e.details.causes = causes;
        e
    }

    /// A malformed request (400 BadRequest).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// The verb is not served for this resource (405 MethodNotAllowed).
    pub fn method_not_allowed() -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// The body's content type is not accepted (415 UnsupportedMediaType).
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
        .tap(|e| e.details.kind = Some(content_type.to_string()).filter(|c| !c.is_empty()))
    }

    /// A resourceVersion or continue token that is no longer available (410 Expired).
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// Missing or wrong bearer token (401 Unauthorized).
    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// The request is understood but refused (403 Forbidden).
    pub fn forbidden(group: &str, resource: &str, name: &str, detail: &str) -> Self {
        ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: {detail}",
                qualified(group, resource)
            ),
        )
        .with_details(group, resource, name)
    }

    /// An unexpected server-side failure (500 InternalError).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    /// The request body is too large (413 RequestEntityTooLarge).
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(413, "RequestEntityTooLarge", message)
    }

    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }

    /// The `metav1.Status` object for this error.
    pub fn to_status(&self) -> Value {
        let d = &self.details;
        let mut details = serde_json::Map::new();
        if let Some(n) = &d.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &d.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &d.kind {
            details.insert("kind".into(), json!(k));
        }
        if !d.causes.is_empty() {
            let causes: Vec<Value> = d
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(r) = d.retry_after {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            status["reason"] = json!(self.reason);
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// `resource.group`, or `resource` for the core group, as Kubernetes prints a GroupResource.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// Errors from starting or running an emulator (not from serving a request).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding the listening socket or writing the kubeconfig failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server thread could not be started.
    #[error("emulator failed to start: {0}")]
    Start(String),
    /// An API call through the in-process API failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_matches_kubernetes() {
        let s = ApiError::not_found("apps", "deployments", "web").to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["kind"], "deployments");
        assert_eq!(s["details"]["group"], "apps");
    }

    #[test]
    fn invalid_lists_causes() {
        let e = ApiError::invalid(
            "",
            "ConfigMap",
            "x",
            vec![Cause::required("metadata.name", "")],
        );
        assert_eq!(
            e.message,
            "ConfigMap \"x\" is invalid: metadata.name: Required value"
        );
        assert_eq!(
            e.to_status()["details"]["causes"][0]["field"],
            "metadata.name"
        );
    }
}
