//! Writes by request: create (POST), update (PUT) and the merge, JSON and strategic patches,
//! each checked and then handed to the commit pipeline; and the checks every write shares.

use std::sync::Arc;

use serde_json::{Value, json};

use super::ids::random_suffix;
use super::managed::Op;
use super::meta::{meta, meta_mut, meta_str};
use super::read::stored;
use super::scale::{requested_replicas, scale_of};
use super::{Api, Sub, WriteOptions, WriteResult};
use crate::convert::to_version;
use crate::error::{ApiError, Cause};
use crate::fields::Shape;
use crate::patch::{PatchType, json_patch, merge_patch, strategic_merge};
use crate::registry::{GroupResource, ResourceType};
use crate::store::Inner;

impl Api {
    /// Creates an object (POST).
    pub fn create(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        Self::check_body_type(rt, &body)?;
        Self::check_namespace(rt, ns, &body)?;
        if meta_str(&body, "resourceVersion").is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut inner = self.store.lock();
        Self::namespace_usable(&inner, rt, ns)?;
        let mut obj = body;
        let m = meta_mut(&mut obj);
        let mut name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let prefix = m
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    "",
                    vec![Cause::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
            // Retry on the (unlikely) collision rather than answering AlreadyExists.
            for _ in 0..8 {
                name = format!("{prefix}{}", random_suffix());
                if inner.get(&rt.storage, ns, &name).is_none() {
                    break;
                }
            }
            m.insert("name".into(), json!(name));
        }
        if inner.get(&rt.storage, ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.resource, &name));
        }
        let manager = Self::manager(opts)?;
        self.commit(
            &mut inner,
            rt,
            ns,
            &name,
            None,
            obj,
            Sub::Main,
            Op::Create,
            &manager,
            opts,
        )
    }

    /// Replaces an object (PUT), with optimistic concurrency on `metadata.resourceVersion`.
    pub fn update(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        sub: Sub,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        if sub == Sub::Scale {
            return self.update_scale(rt, ns, name, body, opts);
        }
        Self::check_body_type(rt, &body)?;
        Self::check_namespace(rt, ns, &body)?;
        check_name(meta_str(&body, "name").unwrap_or_default(), name)?;
        let manager = Self::manager(opts)?;
        let mut inner = self.store.lock();
        let old = stored(&inner, rt, ns, name)?;
        let old_v = to_version(rt, &old);
        check_rv(rt, name, &body, &old)?;
        check_uid(
            rt,
            name,
            meta_str(&body, "uid").filter(|s| !s.is_empty()),
            &old,
        )?;
        self.commit(
            &mut inner,
            rt,
            ns,
            name,
            Some(old_v),
            body,
            sub,
            Op::Update,
            &manager,
            opts,
        )
    }

    /// Patches an object (PATCH) with any of the four patch types.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        sub: Sub,
        ptype: PatchType,
        patch: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        if opts.force && ptype != PatchType::Apply {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )],
            ));
        }
        if ptype == PatchType::Strategic && rt.custom {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                ],
            ));
        }
        if ptype == PatchType::Apply {
            return self.apply(rt, ns, name, sub, patch, opts);
        }
        let manager = Self::manager(opts)?;
        let mut inner = self.store.lock();
        let old = stored(&inner, rt, ns, name)?;
        let old_v = to_version(rt, &old);
        let base = if sub == Sub::Scale {
            scale_of(rt, &old_v)?
        } else {
            old_v.clone()
        };
        let shape = Shape {
            schema: rt.schema.as_deref(),
        };
        let mut patched = match ptype {
            PatchType::Merge => merge_patch(&base, &patch)?,
            PatchType::Json => json_patch(&base, &patch)?,
            PatchType::Strategic => strategic_merge(&base, &patch, shape)?,
            PatchType::Apply => unreachable!("handled above"),
        };
        if !patched.is_object() {
            return Err(ApiError::bad_request(
                "the patch turned the object into a non-object",
            ));
        }
        check_rv(rt, name, &patched, &old)?;
        check_name(meta_str(&patched, "name").unwrap_or_default(), name)?;
        if sub == Sub::Scale {
            let replicas = requested_replicas(&patched, name)?;
            return self.commit_scale(&mut inner, rt, ns, name, old_v, replicas, &manager, opts);
        }
        Self::check_body_type(rt, &patched)?;
        // A patch cannot change the kind or apiVersion away.
        patched["apiVersion"] = json!(rt.api_version());
        patched["kind"] = json!(rt.kind);
        self.commit(
            &mut inner,
            rt,
            ns,
            name,
            Some(old_v),
            patched,
            sub,
            Op::Patch,
            &manager,
            opts,
        )
    }

    /// A body must be an object of this type's apiVersion and kind (where it names them).
    pub(super) fn check_body_type(rt: &ResourceType, body: &Value) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of the request could not be decoded as a {}: expected an object",
                rt.kind
            )));
        }
        if let Some(av) = body.get("apiVersion") {
            let av = av.as_str().unwrap_or_default();
            if !av.is_empty() && av != rt.api_version() {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    rt.api_version()
                )));
            }
        }
        if let Some(k) = body.get("kind") {
            let k = k.as_str().unwrap_or_default();
            if !k.is_empty() && k != rt.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    rt.kind
                )));
            }
        }
        match body.get("metadata") {
            None | Some(Value::Object(_)) => Ok(()),
            Some(_) => Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: metadata must be an object",
                rt.kind, rt.version, rt.kind
            ))),
        }
    }

    /// The body's namespace, if set, must be the request's.
    pub(super) fn check_namespace(
        rt: &ResourceType,
        ns: &str,
        body: &Value,
    ) -> Result<(), ApiError> {
        if let Some(bns) = meta(body).get("namespace") {
            let bns = bns.as_str().unwrap_or_default();
            if rt.namespaced && !bns.is_empty() && bns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        Ok(())
    }

    /// New objects need an existing namespace that is not terminating.
    pub(super) fn namespace_usable(
        inner: &Inner,
        rt: &ResourceType,
        ns: &str,
    ) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let Some(nsobj) = inner.get(&GroupResource::new("", "namespaces"), "", ns) else {
            return Err(ApiError::not_found("", "namespaces", ns));
        };
        if meta(&nsobj).get("deletionTimestamp").is_some() {
            return Err(ApiError::forbidden(
                &rt.group,
                &rt.resource,
                "",
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ));
        }
        Ok(())
    }

    /// The field manager of a write (`unknown` if unset; at most 128 bytes).
    pub(super) fn manager(opts: &WriteOptions) -> Result<String, ApiError> {
        let m = opts
            .field_manager
            .clone()
            .unwrap_or_else(|| "unknown".to_string());
        if m.len() > 128 {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::too_long(
                    "fieldManager",
                    "may not be more than 128 bytes",
                )],
            ));
        }
        Ok(m)
    }
}

/// The name of the object written (the body of an update, the patched or applied object)
/// must be the URL's, as Kubernetes' `checkName` (endpoints/handlers/rest.go) answers.
pub(super) fn check_name(object_name: &str, url_name: &str) -> Result<(), ApiError> {
    if object_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({url_name} based on URL) was undeterminable: name must be provided"
        )));
    }
    if object_name != url_name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({object_name}) does not match the name on the URL ({url_name})"
        )));
    }
    Ok(())
}

/// Optimistic concurrency: a resourceVersion the body carries must be the stored one (409).
pub(super) fn check_rv(
    rt: &ResourceType,
    name: &str,
    body: &Value,
    old: &Value,
) -> Result<(), ApiError> {
    match meta_str(body, "resourceVersion").filter(|s| !s.is_empty()) {
        Some(rv) if Some(rv) != meta_str(old, "resourceVersion") => {
            Err(ApiError::stale(&rt.group, &rt.resource, name))
        }
        _ => Ok(()),
    }
}

/// A uid precondition (a delete's, or the uid an update carries) must name the stored object.
pub(super) fn check_uid(
    rt: &ResourceType,
    name: &str,
    uid: Option<&str>,
    old: &Value,
) -> Result<(), ApiError> {
    match uid {
        Some(uid) if Some(uid) != meta_str(old, "uid") => Err(ApiError::conflict(
            &rt.group,
            &rt.resource,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(old, "uid").unwrap_or_default()
            ),
        )),
        _ => Ok(()),
    }
}
