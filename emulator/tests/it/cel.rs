//! CRD validation rules (`x-kubernetes-validations`): what the API server refuses, with which
//! status, message and causes. Written to pass on the emulator and on a real cluster
//! (`EMULATOR_CONFORMANCE_KUBECONFIG`): every test has a CRD of its own (its group carries
//! the test's namespace) and deletes it at the end.

use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, Status};
use serde_json::{Value, json};

use crate::common::{Cluster, eventually};

type Crd =
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// A test's CRD: kind `Gadget` in a group of its own.
struct Gadgets {
    api: Api<DynamicObject>,
    crds: Api<DynamicObject>,
    group: String,
}

fn manifest(group: &str, schema: &Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gadgets.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": schema}}]
        }
    })
}

fn crds(c: &Cluster) -> Api<DynamicObject> {
    Api::all_with(c.client.clone(), &ApiResource::erase::<Crd>(&()))
}

fn group(c: &Cluster) -> String {
    format!("{}.cel.example.com", c.ns)
}

/// The root schema with `spec` (and `status`) as given.
fn root(spec: Value, status: Value) -> Value {
    json!({"type": "object", "properties": {"spec": spec, "status": status}})
}

impl Gadgets {
    /// Creates the CRD with `schema` and waits until its objects are served.
    async fn install(c: &Cluster, schema: Value) -> Gadgets {
        let group = group(c);
        let crds = crds(c);
        crds.create(
            &PostParams::default(),
            &serde_json::from_value(manifest(&group, &schema)).expect("crd"),
        )
        .await
        .expect("the CRD is accepted");
        let ar = ApiResource {
            group: group.clone(),
            version: "v1".into(),
            api_version: format!("{group}/v1"),
            kind: "Gadget".into(),
            plural: "gadgets".into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &c.ns, &ar);
        eventually("the CRD to be served", || {
            let api = api.clone();
            async move { api.list(&ListParams::default()).await.ok().map(|_| ()) }
        })
        .await;
        Gadgets { api, crds, group }
    }

    /// Replaces the CRD's schema, and waits until `probe` (a spec) is refused (a real API
    /// server takes a moment to serve the new schema).
    async fn change_schema(&self, schema: Value, probe: Value) {
        let name = format!("gadgets.{}", self.group);
        self.crds
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"versions": [{"name": "v1", "served": true,
                    "storage": true, "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": schema}}]}})),
            )
            .await
            .expect("the CRD update is accepted");
        eventually("the new schema to be in force", || {
            let probe = probe.clone();
            async move {
                let dry = PostParams {
                    dry_run: true,
                    ..Default::default()
                };
                let refused = self.api.create(&dry, &self.object("probe", probe)).await;
                refused.err().map(|_| ())
            }
        })
        .await;
    }

    fn object(&self, name: &str, spec: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": format!("{}/v1", self.group), "kind": "Gadget",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("gadget")
    }

    async fn create(&self, name: &str, spec: Value) -> Result<DynamicObject, Box<Status>> {
        self.api
            .create(&PostParams::default(), &self.object(name, spec))
            .await
            .map_err(status)
    }

    /// A merge patch of the spec.
    async fn patch(&self, name: &str, spec: Value) -> Result<DynamicObject, Box<Status>> {
        self.api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .map_err(status)
    }

    /// Server-side apply of the whole spec.
    async fn apply(&self, name: &str, spec: Value) -> Result<DynamicObject, Box<Status>> {
        self.api
            .patch(
                name,
                &PatchParams::apply("celtest").force(),
                &Patch::Apply(self.object(name, spec)),
            )
            .await
            .map_err(status)
    }

    /// The message Kubernetes gives a 422 for this gadget: `Gadget.<group> "<name>" is
    /// invalid: <what>`.
    fn invalid(&self, name: &str, what: &str) -> String {
        format!("Gadget.{} \"{name}\" is invalid: {what}", self.group)
    }

    async fn uninstall(self) {
        let name = format!("gadgets.{}", self.group);
        self.crds
            .delete(&name, &DeleteParams::default())
            .await
            .expect("the CRD is deleted");
    }
}

fn status(e: kube::Error) -> Box<Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Asserts a 422 `Invalid` with `message` and these causes (reason, field, message).
fn assert_invalid(s: &Status, message: &str, causes: &[(&str, &str, &str)]) {
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    assert_eq!(s.message, message);
    let got: Vec<(&str, &str, &str)> = s
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| (c.reason.as_str(), c.field.as_str(), c.message.as_str()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(got, causes, "{s:?}");
}

#[tokio::test]
async fn rules_refuse_with_the_api_servers_status() {
    let c = Cluster::new().await;
    let g = Gadgets::install(
        &c,
        root(
            json!({"type": "object",
                "properties": {
                    "min": {"type": "integer"}, "max": {"type": "integer"},
                    "ports": {"type": "array", "maxItems": 10,
                        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "required": ["name", "port"], "properties": {
                            "name": {"type": "string", "maxLength": 15},
                            "port": {"type": "integer"}},
                        "x-kubernetes-validations": [{"rule": "self.port > 0 && self.port < 65536"}]}}},
                "x-kubernetes-validations": [
                    {"rule": "self.min <= self.max", "message": "min must not exceed max"},
                    {"rule": "!has(self.ports) || self.ports.all(p, self.ports.exists_one(q, q.port == p.port))",
                     "message": "each port may be used once"}]}),
            json!({"type": "object"}),
        ),
    )
    .await;
    // With and without the optional list.
    g.create("bare", json!({"min": 1, "max": 2}))
        .await
        .expect("no ports");
    g.create(
        "ports",
        json!({"min": 1, "max": 1, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}),
    )
    .await
    .expect("distinct ports");

    let e = g
        .create("upside", json!({"min": 3, "max": 2}))
        .await
        .unwrap_err();
    let detail = "Invalid value: \"object\": min must not exceed max";
    assert_invalid(
        &e,
        &g.invalid("upside", &format!("spec: {detail}")),
        &[("FieldValueInvalid", "spec", detail)],
    );

    let e = g
        .create(
            "same",
            json!({"min": 1, "max": 1, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
        )
        .await
        .unwrap_err();
    let detail = "Invalid value: \"object\": each port may be used once";
    assert_invalid(
        &e,
        &g.invalid("same", &format!("spec: {detail}")),
        &[("FieldValueInvalid", "spec", detail)],
    );

    // A rule on list items runs per item; without a message, the rule is the message.
    let e = g
        .create(
            "item",
            json!({"min": 1, "max": 1, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 0}]}),
        )
        .await
        .unwrap_err();
    let detail = "Invalid value: \"object\": failed rule: self.port > 0 && self.port < 65536";
    assert_invalid(
        &e,
        &g.invalid("item", &format!("spec.ports[1]: {detail}")),
        &[("FieldValueInvalid", "spec.ports[1]", detail)],
    );

    // A rule reading an absent field fails at run time, named by its message.
    let e = g.create("nomax", json!({"min": 1})).await.unwrap_err();
    let detail =
        "Invalid value: \"object\": no such key: max evaluating rule: min must not exceed max";
    assert_invalid(
        &e,
        &g.invalid("nomax", &format!("spec: {detail}")),
        &[("FieldValueInvalid", "spec", detail)],
    );

    // Rules apply to patches and server-side apply as to creates.
    let e = g.patch("bare", json!({"min": 5})).await.unwrap_err();
    assert!(e.message.contains("min must not exceed max"), "{e:?}");
    let e = g
        .apply("bare", json!({"min": 5, "max": 4}))
        .await
        .unwrap_err();
    assert!(e.message.contains("min must not exceed max"), "{e:?}");
    g.apply("bare", json!({"min": 4, "max": 4}))
        .await
        .expect("a valid apply");

    // A schema error that leaves the object unfit for the rules keeps them from running.
    let e = g
        .create("typed", json!({"min": "one", "max": 2}))
        .await
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");
    assert!(
        e.message
            .contains("some validation rules were not checked because the object was invalid"),
        "{e:?}"
    );
    g.uninstall().await;
}

#[tokio::test]
async fn message_expression_reason_and_field_path() {
    let c = Cluster::new().await;
    let g = Gadgets::install(
        &c,
        root(
            json!({"type": "object",
                "properties": {
                    "replicas": {"type": "integer"}, "limit": {"type": "integer"},
                    "owner": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}},
                "x-kubernetes-validations": [
                    {"rule": "!has(self.replicas) || self.replicas <= self.limit",
                     "messageExpression": "'replicas ' + string(self.replicas) + ' is above ' + string(self.limit)",
                     "reason": "FieldValueForbidden", "fieldPath": ".replicas"},
                    {"rule": "has(self.owner)", "message": "an owner is needed",
                     "reason": "FieldValueRequired", "fieldPath": ".owner"},
                    {"rule": "!has(self.labels) || !('team' in self.labels) || self.labels['team'] != 'none'",
                     "message": "a team is needed", "fieldPath": ".labels['team']"}]}),
            json!({"type": "object"}),
        ),
    )
    .await;
    g.create("ok", json!({"replicas": 1, "limit": 2, "owner": "me"}))
        .await
        .expect("valid");
    let e = g
        .create("many", json!({"replicas": 5, "limit": 3, "owner": "me"}))
        .await
        .unwrap_err();
    assert_invalid(
        &e,
        &g.invalid("many", "spec.replicas: Forbidden: replicas 5 is above 3"),
        &[(
            "FieldValueForbidden",
            "spec.replicas",
            "Forbidden: replicas 5 is above 3",
        )],
    );
    let e = g.create("orphan", json!({"limit": 3})).await.unwrap_err();
    assert_invalid(
        &e,
        &g.invalid("orphan", "spec.owner: Required value: an owner is needed"),
        &[(
            "FieldValueRequired",
            "spec.owner",
            "Required value: an owner is needed",
        )],
    );
    let e = g
        .create(
            "teamless",
            json!({"limit": 3, "owner": "me", "labels": {"team": "none"}}),
        )
        .await
        .unwrap_err();
    let detail = "Invalid value: \"object\": a team is needed";
    assert_invalid(
        &e,
        &g.invalid("teamless", &format!("spec.labels[team]: {detail}")),
        &[("FieldValueInvalid", "spec.labels[team]", detail)],
    );
    g.uninstall().await;
}

#[tokio::test]
async fn transition_rules_see_the_old_object() {
    let c = Cluster::new().await;
    let g = Gadgets::install(
        &c,
        root(
            json!({"type": "object",
                "properties": {
                    "size": {"type": "integer"},
                    "class": {"type": "string",
                        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "class is immutable"}]}},
                "x-kubernetes-validations": [
                    {"rule": "self.size >= oldSelf.size", "message": "size may not shrink"},
                    {"rule": "oldSelf.hasValue() || self.size < 10", "optionalOldSelf": true,
                     "message": "start below 10"}]}),
            json!({"type": "object"}),
        ),
    )
    .await;
    // On create, only the optionalOldSelf rule runs (oldSelf is none).
    let e = g
        .create("big", json!({"size": 20, "class": "a"}))
        .await
        .unwrap_err();
    let detail = "Invalid value: \"object\": start below 10";
    assert_invalid(
        &e,
        &g.invalid("big", &format!("spec: {detail}")),
        &[("FieldValueInvalid", "spec", detail)],
    );
    g.create("g", json!({"size": 5, "class": "a"}))
        .await
        .expect("created");
    g.patch("g", json!({"size": 20}))
        .await
        .expect("may grow past 10");
    let e = g.patch("g", json!({"size": 3})).await.unwrap_err();
    let detail = "Invalid value: \"object\": size may not shrink";
    assert_invalid(
        &e,
        &g.invalid("g", &format!("spec: {detail}")),
        &[("FieldValueInvalid", "spec", detail)],
    );
    let e = g.patch("g", json!({"class": "b"})).await.unwrap_err();
    let detail = "Invalid value: \"string\": class is immutable";
    assert_invalid(
        &e,
        &g.invalid("g", &format!("spec.class: {detail}")),
        &[("FieldValueInvalid", "spec.class", detail)],
    );
    g.uninstall().await;
}

#[tokio::test]
async fn ratcheting_keeps_what_an_update_leaves_unchanged() {
    let c = Cluster::new().await;
    let props = json!({"note": {"type": "string"}, "size": {"type": "integer"}});
    let g = Gadgets::install(
        &c,
        root(
            json!({"type": "object", "properties": props}),
            json!({"type": "object"}),
        ),
    )
    .await;
    g.create("old", json!({"size": 7, "note": "a"}))
        .await
        .expect("created before the rules");
    // Now sizes must stay below 5 (a rule on the field) and below 6 (a rule on spec).
    let mut stricter = props.clone();
    stricter["size"]["x-kubernetes-validations"] =
        json!([{"rule": "self < 5", "message": "size must be below 5"}]);
    let schema = root(
        json!({"type": "object", "properties": stricter,
               "x-kubernetes-validations": [{"rule": "!has(self.size) || self.size < 6", "message": "spec.size must be below 6"}]}),
        json!({"type": "object"}),
    );
    g.change_schema(schema, json!({"size": 9})).await;
    // The note changes, the size does not: its rule is ratcheted, spec's is not (spec changed).
    let e = g.patch("old", json!({"note": "b"})).await.unwrap_err();
    let detail = "Invalid value: \"object\": spec.size must be below 6";
    assert_invalid(
        &e,
        &g.invalid("old", &format!("spec: {detail}")),
        &[("FieldValueInvalid", "spec", detail)],
    );
    // A change of metadata alone leaves spec unchanged: both are ratcheted.
    g.api
        .patch(
            "old",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .expect("unchanged spec is ratcheted");
    // Changing the size itself brings its rules back.
    let e = g.patch("old", json!({"size": 8})).await.unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");
    assert!(e.message.contains("size must be below 5"), "{e:?}");
    g.uninstall().await;
}

#[tokio::test]
async fn status_rules_run_on_the_status_subresource() {
    let c = Cluster::new().await;
    let g = Gadgets::install(
        &c,
        root(
            json!({"type": "object", "properties": {"size": {"type": "integer"}}}),
            json!({"type": "object", "properties": {"phase": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self != 'Broken'", "message": "no such phase"}]}}}),
        ),
    )
    .await;
    g.create("s", json!({"size": 1})).await.expect("created");
    let status = |phase: &str| Patch::Merge(json!({"status": {"phase": phase}}));
    g.api
        .patch_status("s", &PatchParams::default(), &status("Ready"))
        .await
        .expect("a valid status");
    let e = g
        .api
        .patch_status("s", &PatchParams::default(), &status("Broken"))
        .await
        .map_err(status_of)
        .unwrap_err();
    let detail = "Invalid value: \"string\": no such phase";
    assert_invalid(
        &e,
        &g.invalid("s", &format!("status.phase: {detail}")),
        &[("FieldValueInvalid", "status.phase", detail)],
    );
    g.uninstall().await;
}

fn status_of(e: kube::Error) -> Box<Status> {
    status(e)
}

#[tokio::test]
async fn crds_with_rules_that_do_not_compile_are_refused() {
    let c = Cluster::new().await;
    let crds = crds(&c);
    let group = group(&c);
    for (rule, expected) in [
        (
            "self.size.frobnicate() == 1",
            "undeclared reference to 'frobnicate'",
        ),
        ("self.size >", "compilation failed"),
    ] {
        let schema = root(
            json!({"type": "object", "properties": {"size": {"type": "integer"}},
                   "x-kubernetes-validations": [{"rule": rule}]}),
            json!({"type": "object"}),
        );
        let e = crds
            .create(
                &PostParams::default(),
                &serde_json::from_value(manifest(&group, &schema)).expect("crd"),
            )
            .await
            .map_err(status)
            .expect_err("a rule that does not compile is refused");
        assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");
        assert!(
            e.message.starts_with(&format!(
                "CustomResourceDefinition.apiextensions.k8s.io \"gadgets.{group}\" is invalid: spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: "
            )),
            "{}",
            e.message
        );
        assert!(e.message.contains(expected), "{}", e.message);
    }
}

#[tokio::test]
async fn a_costly_rule_runs_out_of_budget_instead_of_hanging() {
    let c = Cluster::new().await;
    // Each item's rule is cheap enough for Kubernetes' estimate (100 × 100 steps), but a
    // thousand items exceed the budget of one object.
    let g = Gadgets::install(
        &c,
        root(
            json!({"type": "object", "properties": {"items": {"type": "array", "maxItems": 1000,
                "items": {"type": "object", "properties": {
                    "l": {"type": "array", "maxItems": 100, "items": {"type": "integer"}}},
                "x-kubernetes-validations": [
                    {"rule": "self.l.all(a, self.l.all(b, a <= b || a > b))"}]}}}}),
            json!({"type": "object"}),
        ),
    )
    .await;
    let item = json!({"l": (0..100).collect::<Vec<i64>>()});
    g.create("few", json!({"items": [item.clone(), item.clone()]}))
        .await
        .expect("two items are within the budget");
    let e = g
        .create("many", json!({"items": vec![item; 1000]}))
        .await
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");
    assert!(
        e.message.contains(
            "validation failed due to running out of cost budget, no further validation rules will be run"
        ),
        "{}",
        e.message
    );
    g.uninstall().await;
}
