//! The decide step of a reconcile, without an API server: from the desired
//! children and what the cluster holds, what to apply, what is already as
//! desired, what to prune, which objects belong to someone else, and which
//! replica counts to hand over to an autoscaler first.

use std::collections::{BTreeMap, BTreeSet};

use kube::core::DynamicObject;
use serde_json::Value;

use super::children::Observed;
use super::conditions::{Rollout, Verdict};
use crate::decorate::{ADOPT_ANNOTATION, ANNOTATION_TEMPLATE_HASH, DesiredObject, FIELD_MANAGER};
use crate::failure::Failure;
use crate::kinds::ChildKinds;
use crate::plugin::ObjectKey;

/// The owner of the children, as the decision needs it.
#[derive(Clone, Copy, Debug)]
pub struct OwnerRef<'a> {
    /// `PortfolioApp` or `DatabaseMigration`.
    pub kind: &'a str,
    /// Name of the owner, as adoption annotations name it.
    pub name: &'a str,
    /// The uid a child's controller reference must carry to be the owner's.
    pub uid: &'a str,
}

impl OwnerRef<'_> {
    /// The value of [`ADOPT_ANNOTATION`] that lets this owner adopt an object.
    pub fn adopt_value(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// An existing object the operator would create or apply, and may not own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The existing object under a desired child's name.
    pub key: ObjectKey,
    /// Who it belongs to, and how to hand it over, for people.
    pub holder: String,
}

/// A Deployment whose replica count the operator stops applying: first
/// another field manager takes the field at this count, so that dropping it
/// from the operator's apply does not reset the Deployment to one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    /// The Deployment.
    pub key: ObjectKey,
    /// The count it keeps until the autoscaler changes it.
    pub replicas: i64,
}

/// What a reconcile will do.
#[derive(Debug, Default)]
pub struct Decision<'a> {
    /// Replica counts handed over before anything is applied.
    pub handovers: Vec<Handover>,
    /// Objects to apply, in the plugin's order.
    pub apply: Vec<&'a DesiredObject>,
    /// Objects already as desired: nothing is sent.
    pub unchanged: Vec<&'a DesiredObject>,
    /// Existing objects that belong to someone else: left alone, and reported.
    pub conflicts: Vec<Conflict>,
    /// Children no longer desired, to delete.
    pub prune: Vec<&'a Observed>,
}

/// What the cluster holds under the key of a desired object that is not
/// among the observed children (the watch caches only the operator's own).
#[derive(Clone, Debug)]
pub enum Existing {
    /// Nothing: applying creates it.
    Absent,
    /// An object, whoever made it.
    Present(Box<DynamicObject>),
}

/// Decide what to do with `desired` given the owner's `observed` children
/// and, for desired objects not among them, what `existing` says is there.
/// A desired object missing from `existing` is treated as absent.
pub fn decide<'a>(
    owner: OwnerRef<'_>,
    desired: &'a [DesiredObject],
    observed: &'a [Observed],
    existing: &BTreeMap<ObjectKey, Existing>,
    kinds: &ChildKinds,
) -> Decision<'a> {
    let mut decision = Decision::default();
    let by_key: BTreeMap<ObjectKey, &Observed> = observed.iter().map(|o| (o.key(), o)).collect();
    for object in desired {
        let key = object.key();
        if let Some(child) = by_key.get(key) {
            if let Some(replicas) = handover(object, child, desired) {
                decision.handovers.push(Handover {
                    key: key.clone(),
                    replicas,
                });
            }
            if is_applied(object, &child.object) {
                decision.unchanged.push(object);
            } else {
                decision.apply.push(object);
            }
            continue;
        }
        match existing.get(key) {
            None | Some(Existing::Absent) => decision.apply.push(object),
            Some(Existing::Present(live)) => match holder(owner, live) {
                // Ours, and applied already (the watch has not shown it yet,
                // as right after the reconcile that created it).
                None if is_applied(object, live) => decision.unchanged.push(object),
                None => decision.apply.push(object),
                Some(holder) => decision.conflicts.push(Conflict {
                    key: key.clone(),
                    holder,
                }),
            },
        }
    }
    let keep: BTreeSet<&ObjectKey> = desired.iter().map(DesiredObject::key).collect();
    decision.prune = observed
        .iter()
        .filter(|child| {
            let key = child.key();
            !keep.contains(&key)
                && kinds
                    .get(&key.api_version, &key.kind)
                    .is_none_or(|kind| kind.pruned)
        })
        .collect();
    decision
}

/// What a reconcile that acted on `decision` concludes, given the rollout:
/// any conflict degrades the app, naming each object and its holder.
pub fn verdict(conflicts: &[Conflict], rollout: Rollout) -> Verdict {
    if conflicts.is_empty() {
        return Verdict::Applied(rollout);
    }
    let each: Vec<String> = conflicts
        .iter()
        .map(|c| format!("{} already exists and {}", c.key, c.holder))
        .collect();
    Verdict::Failed {
        failure: Failure::Conflict,
        message: format!("{}; the operator leaves it alone", each.join("; ")),
    }
}

/// The workloads among `desired` whose pod template applying would change,
/// or which it would create: each starts a rollout. The template hash the
/// operator put on the live object decides; a live object without one (made
/// by an older operator) is compared field by field.
pub fn template_changes<'a>(
    desired: &'a [DesiredObject],
    observed: &[Observed],
) -> Vec<&'a ObjectKey> {
    let hash = |object: &Value| {
        object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ANNOTATION_TEMPLATE_HASH))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    desired
        .iter()
        .filter_map(|object| {
            let wanted = hash(object.object())?;
            let key = object.key();
            let Some(live) = observed.iter().find(|child| &child.key() == key) else {
                return Some(key);
            };
            let applied = live
                .object
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_TEMPLATE_HASH));
            let changes = match applied {
                Some(applied) => *applied != wanted,
                None => match (
                    object.object().pointer("/spec/template"),
                    live.object.data.pointer("/spec/template"),
                ) {
                    (Some(want), Some(have)) => !is_subset(want, have),
                    _ => true,
                },
            };
            changes.then_some(key)
        })
        .collect()
}

/// Who holds `live` if not `owner`: `None` when the owner may apply it (it
/// is the owner's, or its owner opted in to adoption).
pub fn holder(owner: OwnerRef<'_>, live: &DynamicObject) -> Option<String> {
    let references = live
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default();
    let controller = references.iter().find(|r| r.controller == Some(true));
    match controller {
        Some(reference) if reference.uid == owner.uid => None,
        Some(reference) => Some(format!(
            "it is controlled by {} {} (uid {})",
            reference.kind, reference.name, reference.uid
        )),
        None => {
            let opted_in = live
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ADOPT_ANNOTATION))
                .is_some_and(|value| *value == owner.adopt_value());
            if opted_in {
                None
            } else {
                Some(format!(
                    "it was not created by the operator; to hand it over, annotate it {ADOPT_ANNOTATION}={}, or rename or delete it",
                    owner.adopt_value()
                ))
            }
        }
    }
}

/// Whether every field of `desired` is already on `live`: then applying
/// would change nothing.
fn is_applied(desired: &DesiredObject, live: &DynamicObject) -> bool {
    let Value::Object(want) = desired.object() else {
        return false;
    };
    // Field by field against the live object's parts, not against a copy of
    // it as one value: every child of every reconcile passes here.
    want.iter().all(|(key, value)| match key.as_str() {
        // A DynamicObject keeps its type apart.
        "apiVersion" | "kind" => true,
        "metadata" => {
            serde_json::to_value(&live.metadata).is_ok_and(|meta| is_subset(value, &meta))
        }
        _ => live
            .data
            .get(key)
            .is_some_and(|have| is_subset(value, have)),
    })
}

/// Whether every field of `desired` is in `observed` with the same value.
/// Lists match element by element (the API server adds defaults inside
/// elements, never new elements), maps field by field.
pub fn is_subset(desired: &Value, observed: &Value) -> bool {
    match (desired, observed) {
        (Value::Object(want), Value::Object(have)) => want
            .iter()
            .all(|(key, value)| have.get(key).is_some_and(|other| is_subset(value, other))),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(a, b)| is_subset(a, b))
        }
        // The API server normalises numbers (1.0 and 1 are the same quantity).
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => desired == observed,
    }
}

/// The count to hand over when the desired Deployment no longer sets
/// `spec.replicas` but the operator's apply still owns it on the live one:
/// the live count, raised to the autoscaler's minimum.
fn handover(desired: &DesiredObject, child: &Observed, all: &[DesiredObject]) -> Option<i64> {
    let key = desired.key();
    if key.kind != "Deployment" || desired.object().pointer("/spec/replicas").is_some() {
        return None;
    }
    if !owns_replicas(&child.object) {
        return None;
    }
    let live = child
        .object
        .data
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let minimum = all
        .iter()
        .filter(|o| o.key().kind == "HorizontalPodAutoscaler")
        .filter(|o| {
            let target = o.object().pointer("/spec/scaleTargetRef");
            target.and_then(|t| t.get("kind")) == Some(&Value::from("Deployment"))
                && target.and_then(|t| t.get("name")) == Some(&Value::from(key.name.clone()))
        })
        .filter_map(|o| {
            o.object()
                .pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
        })
        .max()
        .unwrap_or(1);
    Some(live.max(minimum))
}

/// Whether the operator's server-side apply owns `spec.replicas` of `live`.
pub fn owns_replicas(live: &DynamicObject) -> bool {
    live.metadata
        .managed_fields
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|entry| {
            entry.manager.as_deref() == Some(FIELD_MANAGER)
                && entry.operation.as_deref() == Some("Apply")
        })
        .any(|entry| {
            entry
                .fields_v1
                .as_ref()
                .and_then(|fields| fields.0.pointer("/f:spec/f:replicas"))
                .is_some()
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kinds::ChildKind;
    use serde_json::json;

    const OWNER: OwnerRef<'static> = OwnerRef {
        kind: "PortfolioApp",
        name: "shop",
        uid: "uid-1",
    };

    fn desired(object: Value) -> DesiredObject {
        DesiredObject::from_value(object).expect("a desired object")
    }

    fn live(object: Value) -> DynamicObject {
        serde_json::from_value(object).expect("a live object")
    }

    fn ours(api_version: &str, kind: &str, name: &str, extra: Value) -> Observed {
        let mut object = json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": "demo",
                "labels": {"app.kubernetes.io/managed-by": "portfolio-operator",
                           "app.kubernetes.io/instance": "shop"},
                "ownerReferences": [{"apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
                    "name": "shop", "uid": "uid-1", "controller": true}]},
        });
        merge(&mut object, extra);
        let kinds = ChildKinds::default();
        let kind = kinds.get(api_version, kind).expect("a child kind");
        Observed {
            resource: kind.resource(),
            object: Arc::new(live(object)),
        }
    }

    fn merge(into: &mut Value, from: Value) {
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (slot, value) => *slot = value,
        }
    }

    fn config_map(name: &str, data: Value) -> DesiredObject {
        desired(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "demo"}, "data": data}))
    }

    fn names(objects: &[&DesiredObject]) -> Vec<String> {
        objects.iter().map(|o| o.key().name.clone()).collect()
    }

    #[test]
    fn an_object_is_applied_when_every_field_it_sets_is_live() {
        let want = desired(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "demo", "labels": {"app": "a"}},
            "data": {"k": "v", "n": "1"}, "immutable": false}));
        let base = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "demo", "uid": "u", "resourceVersion": "7",
                "labels": {"app": "a", "extra": "kept"}},
            "data": {"k": "v", "n": "1", "other": "x"}, "immutable": false});
        assert!(
            is_applied(&want, &live(base.clone())),
            "extra live fields change nothing"
        );
        for (pointer, value) in [
            ("/metadata/labels/app", json!("b")),
            ("/metadata/namespace", json!("other")),
            ("/data/k", json!("w")),
            ("/immutable", json!(true)),
        ] {
            let mut changed = base.clone();
            *changed.pointer_mut(pointer).expect("a field") = value;
            assert!(!is_applied(&want, &live(changed)), "{pointer} differs");
        }
        for (parent, field) in [
            ("/metadata/labels", "app"),
            ("/data", "n"),
            ("", "immutable"),
        ] {
            let mut missing = base.clone();
            let parent = missing.pointer_mut(parent).and_then(Value::as_object_mut);
            parent.expect("a map").remove(field);
            assert!(!is_applied(&want, &live(missing)), "{field} missing");
        }
        // The type is the DynamicObject's own, and not compared.
        let mut other_type = base.clone();
        other_type["apiVersion"] = json!("v2");
        assert!(is_applied(&want, &live(other_type)));
    }

    #[test]
    fn only_what_differs_is_applied_and_only_orphans_are_pruned() {
        let want = [
            config_map("same", json!({"a": "1"})),
            config_map("changed", json!({"a": "2"})),
            config_map("new", json!({"a": "3"})),
        ];
        let have = [
            ours("v1", "ConfigMap", "same", json!({"data": {"a": "1"}})),
            ours("v1", "ConfigMap", "changed", json!({"data": {"a": "1"}})),
            ours("v1", "ConfigMap", "orphan", json!({"data": {}})),
        ];
        let decision = decide(
            OWNER,
            &want,
            &have,
            &BTreeMap::new(),
            &ChildKinds::default(),
        );
        assert_eq!(names(&decision.unchanged), ["same"]);
        assert_eq!(names(&decision.apply), ["changed", "new"]);
        let pruned: Vec<_> = decision.prune.iter().map(|o| o.key().name).collect();
        assert_eq!(pruned, ["orphan"]);
        assert!(decision.conflicts.is_empty() && decision.handovers.is_empty());
    }

    #[test]
    fn volumes_are_not_pruned() {
        let have = [ours("v1", "PersistentVolumeClaim", "data", json!({}))];
        let decision = decide(OWNER, &[], &have, &BTreeMap::new(), &ChildKinds::default());
        assert!(decision.prune.is_empty());
    }

    #[test]
    fn someone_elses_objects_are_conflicts_not_takeovers() {
        let want = [
            config_map("theirs", json!({})),
            config_map("controlled", json!({})),
            config_map("handed-over", json!({})),
            config_map("mine-uncached", json!({})),
            config_map("absent", json!({})),
        ];
        let present = |metadata: Value| {
            let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap"});
            object["metadata"] = metadata;
            Existing::Present(Box::new(live(object)))
        };
        let existing = BTreeMap::from([
            (want[0].key().clone(), present(json!({"name": "theirs"}))),
            (
                want[1].key().clone(),
                present(json!({"name": "controlled", "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "other",
                     "uid": "uid-9", "controller": true}]})),
            ),
            (
                want[2].key().clone(),
                present(json!({"name": "handed-over",
                    "annotations": {ADOPT_ANNOTATION: "PortfolioApp/shop"}})),
            ),
            (
                want[3].key().clone(),
                present(json!({"name": "mine-uncached", "ownerReferences": [
                    {"apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp", "name": "shop",
                     "uid": "uid-1", "controller": true}]})),
            ),
            (want[4].key().clone(), Existing::Absent),
        ]);
        let decision = decide(OWNER, &want, &[], &existing, &ChildKinds::default());
        assert_eq!(
            names(&decision.apply),
            ["handed-over", "mine-uncached", "absent"]
        );
        let conflicts: Vec<_> = decision
            .conflicts
            .iter()
            .map(|c| (c.key.name.as_str(), c.holder.as_str()))
            .collect();
        assert_eq!(conflicts.len(), 2);
        assert_eq!(conflicts[0].0, "theirs");
        assert!(
            conflicts[0]
                .1
                .contains("annotate it portfolio.dev/adopt=PortfolioApp/shop"),
            "{}",
            conflicts[0].1
        );
        assert_eq!(conflicts[1].0, "controlled");
        assert!(
            conflicts[1].1.contains("Deployment other"),
            "{}",
            conflicts[1].1
        );
    }

    fn workload(image: &str, hash: Option<&str>) -> Value {
        let mut object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "shop", "namespace": "demo", "annotations": {}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "app", "image": image}]}}}});
        if let Some(hash) = hash {
            object["metadata"]["annotations"][ANNOTATION_TEMPLATE_HASH] = json!(hash);
        }
        object
    }

    #[test]
    fn an_object_of_ours_the_watch_has_not_shown_yet_is_not_applied_again() {
        let want = [
            config_map("created", json!({"a": "1"})),
            config_map("changed", json!({"a": "2"})),
        ];
        let ours = |name: &str, data: Value| {
            Existing::Present(Box::new(live(
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "demo", "uid": "u",
                    "ownerReferences": [{"apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
                        "name": "shop", "uid": "uid-1", "controller": true}]},
                "data": data}),
            )))
        };
        let existing = BTreeMap::from([
            (want[0].key().clone(), ours("created", json!({"a": "1"}))),
            (want[1].key().clone(), ours("changed", json!({"a": "1"}))),
        ]);
        let decision = decide(OWNER, &want, &[], &existing, &ChildKinds::default());
        assert_eq!(names(&decision.unchanged), ["created"]);
        assert_eq!(names(&decision.apply), ["changed"]);
    }

    #[test]
    fn a_rollout_is_a_changed_template_hash_or_a_new_workload() {
        let want = [
            desired(workload("shop:2", Some("hash-2"))),
            config_map("shop-config", json!({"a": "1"})),
        ];
        let changes = |have: &[Observed]| -> Vec<String> {
            template_changes(&want, have)
                .into_iter()
                .map(|k| k.kind.clone())
                .collect()
        };
        // No Deployment yet: creating it is a rollout; a ConfigMap never is.
        assert_eq!(changes(&[]), ["Deployment"]);
        // Applied with another template.
        let old = ours(
            "apps/v1",
            "Deployment",
            "shop",
            workload("shop:1", Some("hash-1")),
        );
        assert_eq!(changes(std::slice::from_ref(&old)), ["Deployment"]);
        // The same template, though the API server filled in defaults.
        let mut defaulted = workload("shop:2", Some("hash-2"));
        defaulted["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        defaulted["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        let same = ours("apps/v1", "Deployment", "shop", defaulted.clone());
        assert!(changes(std::slice::from_ref(&same)).is_empty());
        // Made by an operator that wrote no hash: compared field by field.
        let mut unhashed = defaulted;
        unhashed["metadata"]["annotations"] = json!({});
        let unhashed_same = ours("apps/v1", "Deployment", "shop", unhashed.clone());
        assert!(changes(std::slice::from_ref(&unhashed_same)).is_empty());
        unhashed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("shop:1");
        let unhashed_old = ours("apps/v1", "Deployment", "shop", unhashed);
        assert_eq!(changes(std::slice::from_ref(&unhashed_old)), ["Deployment"]);
    }

    #[test]
    fn a_conflict_degrades_the_app_and_says_how_to_resolve_it() {
        let conflicts = [Conflict {
            key: config_map("shop-config", json!({})).key().clone(),
            holder: "it was not created by the operator".into(),
        }];
        let verdict = verdict(&conflicts, Rollout::Complete { ready: 2 });
        let [ready, progressing, degraded] = crate::controller::conditions::conditions(&verdict);
        assert!(!ready.status && !progressing.status && degraded.status);
        assert_eq!(degraded.reason, "Conflict");
        assert_eq!(
            degraded.message,
            "v1 ConfigMap \"shop-config\" already exists and it was not created by the operator; the operator leaves it alone"
        );
        assert_eq!(
            super::verdict(&[], Rollout::Complete { ready: 2 }),
            Verdict::Applied(Rollout::Complete { ready: 2 })
        );
    }

    #[test]
    fn an_opt_in_for_another_app_is_no_opt_in() {
        let other = live(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "annotations": {ADOPT_ANNOTATION: "PortfolioApp/cart"}}}));
        assert!(holder(OWNER, &other).is_some());
    }

    fn deployment(replicas: Option<i64>) -> DesiredObject {
        let mut object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "shop", "namespace": "demo"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:2"}]}}}});
        if let Some(replicas) = replicas {
            object["spec"]["replicas"] = json!(replicas);
        }
        desired(object)
    }

    fn hpa(min: i64) -> DesiredObject {
        desired(
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "shop", "namespace": "demo"},
            "spec": {"minReplicas": min, "maxReplicas": 10,
                     "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"}}}),
        )
    }

    fn live_deployment(replicas: i64, replicas_owner: &str) -> Observed {
        ours(
            "apps/v1",
            "Deployment",
            "shop",
            json!({
                "metadata": {"managedFields": [
                    {"manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": "apps/v1",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:template": {}}}},
                    {"manager": replicas_owner, "operation": if replicas_owner == FIELD_MANAGER {"Apply"} else {"Update"},
                     "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                ]},
                "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": "x:1"}]}}},
            }),
        )
    }

    #[test]
    fn switching_to_an_autoscaler_hands_the_replica_count_over_first() {
        let have = [live_deployment(4, FIELD_MANAGER)];
        let want = [deployment(None), hpa(2)];
        let decision = decide(
            OWNER,
            &want,
            &have,
            &BTreeMap::new(),
            &ChildKinds::default(),
        );
        assert_eq!(
            decision.handovers,
            [Handover {
                key: want[0].key().clone(),
                replicas: 4
            }]
        );
        // Below the autoscaler's minimum, the minimum.
        let have = [live_deployment(1, FIELD_MANAGER)];
        let decision = decide(
            OWNER,
            &want,
            &have,
            &BTreeMap::new(),
            &ChildKinds::default(),
        );
        assert_eq!(decision.handovers[0].replicas, 2);
    }

    #[test]
    fn nothing_is_handed_over_that_the_operator_does_not_own() {
        // The autoscaler owns the count already: never touched again.
        let have = [live_deployment(5, "kube-controller-manager")];
        let want = [deployment(None), hpa(2)];
        let decision = decide(
            OWNER,
            &want,
            &have,
            &BTreeMap::new(),
            &ChildKinds::default(),
        );
        assert!(decision.handovers.is_empty());
        // A fixed count is applied as usual.
        let have = [live_deployment(5, FIELD_MANAGER)];
        let want = [deployment(Some(3))];
        let decision = decide(
            OWNER,
            &want,
            &have,
            &BTreeMap::new(),
            &ChildKinds::default(),
        );
        assert!(decision.handovers.is_empty());
        assert_eq!(names(&decision.apply), ["shop"]);
    }

    #[test]
    fn subsets_ignore_what_the_server_adds() {
        let desired = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:1"}]}}}});
        let observed = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "uid": "u"}, "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "x:1", "imagePullPolicy": "IfNotPresent"}]}}}});
        assert!(is_subset(&desired, &observed));
    }

    #[test]
    fn any_change_we_own_is_not_a_subset() {
        let desired = json!({"spec": {"replicas": 3, "ports": [{"port": 80}]}});
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"ports": [{"port": 80}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 81}]}})
        ));
        assert!(is_subset(&json!({"a": 1}), &json!({"a": 1.0})));
    }

    #[test]
    fn a_kind_added_at_run_time_is_pruned_like_the_others() {
        let mut kinds = ChildKinds::default();
        kinds
            .add("example.com/v1/Widget".parse::<ChildKind>().unwrap())
            .unwrap();
        let widget = kinds.get("example.com/v1", "Widget").unwrap();
        let orphan = Observed {
            resource: widget.resource(),
            object: Arc::new(live(
                json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "w", "namespace": "demo"}}),
            )),
        };
        let decision = decide(
            OWNER,
            &[],
            std::slice::from_ref(&orphan),
            &BTreeMap::new(),
            &kinds,
        );
        assert_eq!(decision.prune.len(), 1);
    }
}
