//! The objects that install the operator in a cluster: its namespace, service
//! account, the RBAC it needs (and nothing more), and a highly available
//! Deployment with leader election.

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{Value, json};

use crate::kinds::ChildKinds;

/// Name of the service account, roles, bindings, Deployment and Lease.
pub const NAME: &str = "portfolio-operator";

/// What to install.
#[derive(Clone, Debug)]
pub struct InstallOptions {
    /// The operator's image (it runs `portfolio-operator run`).
    pub image: String,
    /// The operator's namespace: its pods, its Lease and the plugin ConfigMaps.
    pub namespace: String,
    /// Watch PortfolioApps in these namespaces only; empty for all namespaces.
    pub watch_namespaces: Vec<String>,
    /// Replicas; one leads, the others stand by.
    pub replicas: u16,
    /// The child kinds plugins may create (`--allow-kind` adds to the
    /// built-ins): the operator is granted exactly these.
    pub kinds: ChildKinds,
    /// Where plugin ConfigMaps are read from; none for the operator's own
    /// namespace. Another namespace must exist already: it is the plugin
    /// authors', not the installation's.
    pub plugin_namespace: Option<String>,
    /// Leader election: several replicas, one acting. Without it the
    /// Deployment has one replica and the `Recreate` strategy, so that two
    /// operators never act at once, even during a rollout.
    pub leader_election: bool,
    /// Flags of `run` passed as they are (plugin limits, lease timing), as
    /// (`--flag`, value) pairs; `run` checks them at start.
    pub run_flags: Vec<(String, String)>,
}

impl InstallOptions {
    /// The defaults of `manifests` for `image`.
    pub fn new(image: impl Into<String>) -> Self {
        InstallOptions {
            image: image.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            watch_namespaces: Vec::new(),
            replicas: 2,
            kinds: ChildKinds::default(),
            plugin_namespace: None,
            leader_election: true,
            run_flags: Vec::new(),
        }
    }
}

/// The operator's namespace unless told otherwise; also where `run` reads
/// plugin ConfigMaps by default.
pub const DEFAULT_NAMESPACE: &str = "portfolio-system";

/// Name of the RoleBinding that grants the operator a watched namespace.
pub const WATCH_BINDING: &str = "portfolio-operator-watch";

/// The watched namespaces, each once and sorted; refused if one is not a
/// namespace name.
fn watched_namespaces(options: &InstallOptions) -> Result<Vec<String>, InstallError> {
    let mut watched = options.watch_namespaces.clone();
    if let Some(bad) = watched.iter().find(|ns| !crate::plugin::is_dns_label(ns)) {
        return Err(InstallError(format!(
            "--watch-namespace: {bad:?} is not a namespace name"
        )));
    }
    watched.sort();
    watched.dedup();
    Ok(watched)
}

/// The options cannot make a working installation.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InstallError(String);

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| Some(items.iter().map(|s| (*s).to_owned()).collect());
    PolicyRule {
        api_groups: strings(groups),
        resources: strings(resources),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// What the operator does wherever it watches apps: read and update them,
/// manage their children (the registered `kinds`), and record Events.
pub fn app_rules(kinds: &ChildKinds) -> Vec<PolicyRule> {
    let mut rules = vec![
        rule(
            &["portfolio.dev"],
            &["portfolioapps", "databasemigrations"],
            &["get", "list", "watch", "update", "patch"],
        ),
        rule(
            &["portfolio.dev"],
            &["portfolioapps/status", "databasemigrations/status"],
            &["get", "update", "patch"],
        ),
        // Owner references with blockOwnerDeletion need it where the
        // OwnerReferencesPermissionEnforcement admission plugin is on.
        rule(
            &["portfolio.dev"],
            &["portfolioapps/finalizers", "databasemigrations/finalizers"],
            &["update"],
        ),
        // The termination message of a migration Job's pod says how it went.
        rule(&[""], &["pods"], &["list"]),
    ];
    // One rule per API group, in the registry's order.
    let mut by_group: Vec<(&str, Vec<&str>)> = Vec::new();
    for kind in kinds.iter() {
        let (group, plural) = (kind.group(), kind.plural.as_str());
        match by_group.iter_mut().find(|(g, _)| *g == group) {
            Some((_, plurals)) => plurals.push(plural),
            None => by_group.push((group, vec![plural])),
        }
    }
    for (group, resources) in by_group {
        rules.push(rule(
            &[group],
            &resources,
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ));
    }
    rules.push(rule(
        &["", "events.k8s.io"],
        &["events"],
        &["create", "patch"],
    ));
    rules
}

/// What the operator does in its own namespace when plugins are read from
/// there too (the default): [`lease_rules`] and [`plugin_rules`].
pub fn own_namespace_rules() -> Vec<PolicyRule> {
    let mut rules = lease_rules();
    rules.extend(plugin_rules());
    rules
}

/// What the operator's namespace holds for it: the leadership Lease, and
/// the per-database migration locks (Leases deleted when released).
pub fn lease_rules() -> Vec<PolicyRule> {
    vec![rule(
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "create", "update", "patch", "delete"],
    )]
}

/// What the operator does in the plugin namespace: read plugin ConfigMaps,
/// and record Events on the uploads it refuses.
pub fn plugin_rules() -> Vec<PolicyRule> {
    vec![
        rule(&[""], &["configmaps"], &["get", "list", "watch"]),
        rule(&["", "events.k8s.io"], &["events"], &["create", "patch"]),
    ]
}

/// Whether `rules` allow `verb` on `group`/`resource` (with `subresource`).
pub fn allows(
    rules: &[PolicyRule],
    verb: &str,
    group: &str,
    resource: &str,
    subresource: &str,
) -> bool {
    let full = if subresource.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}/{subresource}")
    };
    rules.iter().any(|rule| {
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        (groups.iter().any(|g| g == "*" || g == group))
            && resources.iter().any(|r| r == "*" || *r == full)
            && rule.verbs.iter().any(|v| v == "*" || v == verb)
    })
}

fn labels() -> Value {
    json!({
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/component": "operator",
    })
}

/// Every object of the installation, in the order they can be applied.
pub fn objects(options: &InstallOptions) -> Result<Vec<Value>, InstallError> {
    if options.image.trim().is_empty() {
        return Err(InstallError(
            "--image must name the operator's image".into(),
        ));
    }
    if options.replicas == 0 {
        return Err(InstallError("--replicas must be at least 1".into()));
    }
    if !options.leader_election && options.replicas > 1 {
        return Err(InstallError(
            "without leader election run exactly one replica (--replicas 1)".into(),
        ));
    }
    let ns = options.namespace.as_str();
    // The plugin namespace is named only when it is not the operator's own.
    let plugin_ns = options
        .plugin_namespace
        .as_deref()
        .filter(|plugin_ns| *plugin_ns != ns);
    let to_value = |rules: Vec<PolicyRule>| serde_json::to_value(rules).unwrap_or(Value::Null);
    let subject = json!([{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]);
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": ns, "labels": {
                   "pod-security.kubernetes.io/enforce": "restricted"}}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": NAME, "namespace": ns, "labels": labels()}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": NAME, "labels": labels()},
               "rules": to_value(app_rules(&options.kinds))}),
    ];
    let role_ref =
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME});
    let watched = watched_namespaces(options)?;
    if watched.is_empty() {
        objects.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": NAME, "labels": labels()},
                   "roleRef": role_ref, "subjects": subject}),
        );
    }
    // The same rules, granted in each namespace it watches. Named apart from
    // the Role's binding, which a watched namespace may hold as well.
    for namespace in &watched {
        objects.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": WATCH_BINDING, "namespace": namespace, "labels": labels()},
                   "roleRef": role_ref, "subjects": subject}),
        );
    }
    let own_rules = match plugin_ns {
        None => own_namespace_rules(),
        Some(_) => lease_rules(),
    };
    let mut roles = vec![(ns, own_rules)];
    if let Some(plugin_ns) = plugin_ns {
        roles.push((plugin_ns, plugin_rules()));
    }
    for (role_ns, rules) in roles {
        objects.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": NAME, "namespace": role_ns, "labels": labels()},
            "rules": to_value(rules)}),
        );
        objects.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": NAME, "namespace": role_ns, "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            "subjects": subject}),
        );
    }

    let mut args = vec!["run".to_owned()];
    if options.leader_election {
        args.push("--leader-elect".into());
    }
    args.extend([
        "--plugin-namespace".into(),
        plugin_ns.unwrap_or(ns).to_owned(),
        "--log-format".into(),
        "json".into(),
        "--plugin-cache-dir".into(),
        "/var/cache/portfolio-operator".into(),
    ]);
    if !watched.is_empty() {
        args.push("--namespace".into());
        args.push(watched.join(","));
    }
    for kind in options.kinds.added() {
        args.push("--allow-kind".into());
        args.push(kind);
    }
    for (flag, value) in &options.run_flags {
        args.push(flag.clone());
        args.push(value.clone());
    }
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    let mut deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": ns, "labels": labels()},
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": labels()},
            "template": {
                "metadata": {"labels": labels()},
                "spec": {
                    "serviceAccountName": NAME,
                    // The controller finishes in-flight work and releases the
                    // Lease on SIGTERM; a standby then leads.
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                        "runAsGroup": 65532,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "operator",
                        "image": options.image,
                        "args": args,
                        "env": [
                            {"name": "POD_NAME", "valueFrom": field("metadata.name")},
                            {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
                        ],
                        "ports": [{"name": "ops", "containerPort": 8080, "protocol": "TCP"}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "ops"},
                                          "periodSeconds": 10},
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "ops"},
                                           "periodSeconds": 5},
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"memory": "512Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false,
                                            "readOnlyRootFilesystem": true,
                                            "capabilities": {"drop": ["ALL"]}},
                        // Compiled plugins survive a container restart.
                        "volumeMounts": [{"name": "plugin-cache",
                                          "mountPath": "/var/cache/portfolio-operator"}],
                    }],
                    "volumes": [{"name": "plugin-cache", "emptyDir": {"sizeLimit": "256Mi"}}],
                    // Replicas on different nodes, so that one node's loss leaves a standby.
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": labels()},
                    }],
                },
            },
        },
    });
    if !options.leader_election {
        // A rolling update would run the new pod beside the old one.
        deployment["spec"]["strategy"] = json!({"type": "Recreate"});
    }
    objects.push(deployment);
    if options.replicas > 1 {
        objects.push(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels()},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels()}}}),
        );
    }
    objects.push(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("{NAME}-metrics"), "namespace": ns, "labels": labels()},
        "spec": {"selector": labels(),
                 "ports": [{"name": "metrics", "port": 8080, "targetPort": "ops", "protocol": "TCP"}]}}));
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> InstallOptions {
        InstallOptions::new("registry.example/portfolio-operator:0.1.0")
    }

    fn deployment_args(objects: &[Value]) -> String {
        let deployment = objects
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("deployment");
        deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string()
    }

    #[test]
    fn rules_grant_what_the_controller_does_and_nothing_wider() {
        let rules = app_rules(&ChildKinds::default());
        assert!(allows(&rules, "patch", "apps", "deployments", ""));
        assert!(allows(
            &rules,
            "patch",
            "portfolio.dev",
            "portfolioapps",
            "status"
        ));
        assert!(allows(&rules, "delete", "", "persistentvolumeclaims", ""));
        assert!(!allows(
            &rules,
            "delete",
            "portfolio.dev",
            "portfolioapps",
            ""
        ));
        assert!(!allows(
            &rules,
            "create",
            "rbac.authorization.k8s.io",
            "roles",
            ""
        ));
        assert!(!allows(&rules, "get", "", "pods", ""));
        assert!(!allows(&rules, "update", "", "configmaps", "status"));
        for rule in rules.iter().chain(own_namespace_rules().iter()) {
            assert!(!rule.verbs.iter().any(|v| v == "*"), "{rule:?}");
            let resources = rule.resources.as_deref().unwrap_or_default();
            assert!(!resources.iter().any(|r| r.contains('*')), "{rule:?}");
        }
        assert!(!allows(
            &own_namespace_rules(),
            "delete",
            "",
            "configmaps",
            ""
        ));
    }

    #[test]
    fn every_child_kind_is_granted_and_only_those() {
        let mut kinds = ChildKinds::default();
        kinds
            .add("monitoring.coreos.com/v1/ServiceMonitor".parse().unwrap())
            .unwrap();
        let rules = app_rules(&kinds);
        for kind in kinds.iter() {
            for verb in ["get", "list", "watch", "patch", "delete"] {
                assert!(
                    allows(&rules, verb, kind.group(), &kind.plural, ""),
                    "{verb} {}",
                    kind.plural
                );
            }
        }
        assert!(!allows(
            &app_rules(&ChildKinds::default()),
            "patch",
            "monitoring.coreos.com",
            "servicemonitors",
            ""
        ));
        let all = objects(&InstallOptions { kinds, ..options() }).expect("objects");
        let role = all
            .iter()
            .find(|o| o["kind"] == "ClusterRole")
            .expect("cluster role");
        assert!(
            role["rules"].to_string().contains("servicemonitors"),
            "{}",
            role["rules"]
        );
        let deployment = all
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("deployment");
        let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(
            args.contains(
                r#""--allow-kind","monitoring.coreos.com/v1/ServiceMonitor/servicemonitors""#
            ),
            "the operator is told what it is granted: {args}"
        );
    }

    #[test]
    fn each_watched_namespace_is_granted_by_a_role_binding() {
        let all = objects(&options()).expect("objects");
        assert!(all.iter().any(|o| o["kind"] == "ClusterRoleBinding"));
        // The operator's own namespace may be watched too: its binding of the
        // watch rules must not take the name of its Role's binding.
        let scoped = objects(&InstallOptions {
            watch_namespaces: vec![
                "shop".into(),
                DEFAULT_NAMESPACE.into(),
                "cart".into(),
                "shop".into(),
            ],
            ..options()
        })
        .expect("objects");
        assert!(!scoped.iter().any(|o| o["kind"] == "ClusterRoleBinding"));
        let mut granted: Vec<&str> = scoped
            .iter()
            .filter(|o| o["kind"] == "RoleBinding" && o["roleRef"]["kind"] == "ClusterRole")
            .map(|o| {
                assert_eq!(o["metadata"]["name"], WATCH_BINDING);
                o["metadata"]["namespace"].as_str().expect("namespace")
            })
            .collect();
        granted.sort();
        assert_eq!(granted, ["cart", DEFAULT_NAMESPACE, "shop"]);
        let mut identities: Vec<String> = scoped
            .iter()
            .map(|o| {
                format!(
                    "{}/{}/{}",
                    o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]
                )
            })
            .collect();
        let count = identities.len();
        identities.sort();
        identities.dedup();
        assert_eq!(identities.len(), count, "no two objects share a name");
        let deployment = scoped
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("deployment");
        let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(
            args.contains(&format!(r#""--namespace","cart,{DEFAULT_NAMESPACE},shop""#)),
            "{args}"
        );
        let error = objects(&InstallOptions {
            watch_namespaces: vec!["Shop".into()],
            ..options()
        })
        .expect_err("not a namespace name");
        assert!(
            error
                .to_string()
                .contains(r#""Shop" is not a namespace name"#),
            "{error}"
        );
    }

    #[test]
    fn unusable_options_are_refused() {
        let error = objects(&InstallOptions {
            image: " ".into(),
            ..options()
        })
        .expect_err("no image");
        assert!(error.to_string().contains("--image"));
        assert!(
            objects(&InstallOptions {
                replicas: 0,
                ..options()
            })
            .is_err()
        );
    }

    #[test]
    fn a_single_replica_gets_no_disruption_budget() {
        let one = objects(&InstallOptions {
            replicas: 1,
            ..options()
        })
        .expect("objects");
        assert!(!one.iter().any(|o| o["kind"] == "PodDisruptionBudget"));
    }

    #[test]
    fn another_plugin_namespace_gets_its_own_role() {
        let all = objects(&InstallOptions {
            plugin_namespace: Some("plugins".into()),
            ..options()
        })
        .expect("objects");
        let role = |namespace: &str| {
            all.iter()
                .find(|o| o["kind"] == "Role" && o["metadata"]["namespace"] == namespace)
                .unwrap_or_else(|| panic!("a Role in {namespace}"))
        };
        let rules = |namespace: &str| -> Vec<PolicyRule> {
            serde_json::from_value(role(namespace)["rules"].clone()).expect("rules")
        };
        assert_eq!(rules("portfolio-system"), lease_rules());
        assert_eq!(rules("plugins"), plugin_rules());
        let bindings = all
            .iter()
            .filter(|o| o["kind"] == "RoleBinding" && o["roleRef"]["kind"] == "Role")
            .count();
        assert_eq!(bindings, 2);
        assert!(
            deployment_args(&all).contains(r#""--plugin-namespace","plugins""#),
            "{}",
            deployment_args(&all)
        );
        // Naming the operator's own namespace changes nothing.
        let same = objects(&InstallOptions {
            plugin_namespace: Some("portfolio-system".into()),
            ..options()
        })
        .expect("objects");
        assert_eq!(same, objects(&options()).expect("objects"));
    }

    #[test]
    fn without_leader_election_one_replica_is_replaced_not_rolled() {
        let error = objects(&InstallOptions {
            leader_election: false,
            ..options()
        })
        .expect_err("two replicas without an election");
        assert!(error.to_string().contains("--replicas 1"), "{error}");
        let single = objects(&InstallOptions {
            leader_election: false,
            replicas: 1,
            ..options()
        })
        .expect("objects");
        assert!(!deployment_args(&single).contains("--leader-elect"));
        let deployment = single
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("deployment");
        assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    }

    #[test]
    fn run_flags_are_passed_after_the_others() {
        let all = objects(&InstallOptions {
            run_flags: vec![("--plugin-timeout-ms".into(), "250".into())],
            ..options()
        })
        .expect("objects");
        assert!(
            deployment_args(&all).ends_with(r#""--plugin-timeout-ms","250"]"#),
            "{}",
            deployment_args(&all)
        );
    }
}
