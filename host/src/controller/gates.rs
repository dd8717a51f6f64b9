//! Which DatabaseMigrations gate a PortfolioApp, and what they allow: the
//! rollout of a new pod template (only after every expand migration
//! succeeded) and the start of a contract migration (only after the app's
//! rollout completed). Pure functions over what the watches hold, so every
//! rule is tested without an API server.
//!
//! The migrations of an app are the names in its `spec.migrations` and the
//! migrations of its namespace whose `spec.appRef` names it. A migration
//! counts as succeeded (or failed) only for its current spec: its
//! `status.phase` says so and its `status.observedGeneration` is its
//! `metadata.generation`. Anything else — no status yet, a status of an
//! older spec, any other phase, a listed name with no migration behind it —
//! is pending. A `dryRun` migration never changes the schema, so it is
//! reported but never gates anything.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::runtime::reflector::ObjectRef;
use portfolio_api::{
    DatabaseMigration, MigrationGate, MigrationPhase, MigrationStatusPhase, PortfolioApp,
};
use serde_json::Value;

use super::conditions::{DEGRADED, PROGRESSING, READY};
use crate::failure::Failure;

/// The phase shown for a migration the app lists but that does not exist.
pub const MISSING: &str = "Missing";

/// What a gate needs to know of a DatabaseMigration, read leniently: one
/// migration that no longer matches the Rust type must not hide the others
/// (a typed watch would fail its every list, and an app whose expand
/// migration cannot be seen would roll out unguarded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationFacts {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `spec.phase`; unreadable counts as expand, the phase that holds rollouts.
    pub phase: MigrationPhase,
    /// `spec.appRef.name`.
    pub app_ref: Option<String>,
    /// `spec.dryRun`.
    pub dry_run: bool,
    /// `status.phase`, when readable.
    pub status_phase: Option<MigrationStatusPhase>,
    /// `status.observedGeneration`.
    pub observed_generation: Option<i64>,
    /// `status.lastError`.
    pub last_error: Option<String>,
}

impl MigrationFacts {
    /// The facts of a typed migration.
    pub fn of(migration: &DatabaseMigration) -> Self {
        let status = migration.status.as_ref();
        MigrationFacts {
            name: migration.name_any(),
            namespace: migration.namespace().unwrap_or_default(),
            generation: migration.metadata.generation,
            phase: migration.spec.phase,
            app_ref: migration.spec.app_ref.as_ref().map(|r| r.name.clone()),
            dry_run: migration.spec.dry_run,
            status_phase: status.and_then(|s| s.phase),
            observed_generation: status.and_then(|s| s.observed_generation),
            last_error: status.and_then(|s| s.last_error.clone()),
        }
    }

    /// The facts of a migration as the untyped watch holds it.
    pub fn from_dynamic(object: &DynamicObject) -> Self {
        let text = |pointer: &str| {
            object
                .data
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        MigrationFacts {
            name: object.name_any(),
            namespace: object.namespace().unwrap_or_default(),
            generation: object.metadata.generation,
            phase: match object.data.pointer("/spec/phase").and_then(Value::as_str) {
                Some("contract") => MigrationPhase::Contract,
                _ => MigrationPhase::Expand,
            },
            app_ref: text("/spec/appRef/name"),
            dry_run: object
                .data
                .pointer("/spec/dryRun")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            status_phase: object
                .data
                .pointer("/status/phase")
                .and_then(|phase| serde_json::from_value(phase.clone()).ok()),
            observed_generation: object
                .data
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64),
            last_error: text("/status/lastError"),
        }
    }

    /// Where the migration stands for its current spec.
    pub fn state(&self) -> State {
        let current = self.generation.is_some() && self.observed_generation == self.generation;
        match self.status_phase.filter(|_| current) {
            Some(MigrationStatusPhase::Succeeded) => State::Succeeded,
            Some(MigrationStatusPhase::Failed) => State::Failed(self.last_error.clone()),
            Some(phase) => State::Pending(phase_label(phase)),
            // No status yet, or one of an older spec: the migration
            // controller has not looked at this spec.
            None => State::Pending(phase_label(MigrationStatusPhase::Pending)),
        }
    }
}

/// A status phase as the API writes it.
fn phase_label(phase: MigrationStatusPhase) -> &'static str {
    match phase {
        MigrationStatusPhase::Pending => "Pending",
        MigrationStatusPhase::Planning => "Planning",
        MigrationStatusPhase::AwaitingApproval => "AwaitingApproval",
        MigrationStatusPhase::Running => "Running",
        MigrationStatusPhase::Succeeded => "Succeeded",
        MigrationStatusPhase::Failed => "Failed",
    }
}

/// Where a migration stands for its current spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// The app lists it, and there is no such migration.
    Missing,
    /// Not finished for its current spec; the phase as shown.
    Pending(&'static str),
    /// Succeeded for its current spec.
    Succeeded,
    /// Failed for its current spec, with its `lastError`.
    Failed(Option<String>),
}

impl State {
    /// The phase shown in the app's `status.migrations`.
    pub fn label(&self) -> &'static str {
        match self {
            State::Missing => MISSING,
            State::Pending(phase) => phase,
            State::Succeeded => "Succeeded",
            State::Failed(_) => "Failed",
        }
    }
}

/// One migration of an app, as its gates see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateInfo {
    /// Name of the migration, in the app's namespace.
    pub name: String,
    /// Expand or contract; `None` when it is missing (it may be either).
    pub phase: Option<MigrationPhase>,
    /// Whether it only plans (and so never gates).
    pub dry_run: bool,
    /// Where it stands.
    pub state: State,
}

impl GateInfo {
    /// Whether it holds a new pod template back: an expand migration (or a
    /// missing one, which may be one) that has not succeeded.
    pub fn holds_rollout(&self) -> bool {
        self.phase != Some(MigrationPhase::Contract)
            && !self.dry_run
            && self.state != State::Succeeded
    }

    /// The entry of the app's `status.migrations`.
    pub fn gate_status(&self) -> MigrationGate {
        MigrationGate {
            name: self.name.clone(),
            phase: self.state.label().to_owned(),
            ready: !self.holds_rollout(),
        }
    }

    /// `shop-v2 (Running)`, for messages.
    fn describe(&self) -> String {
        format!("{} ({})", self.name, self.state.label())
    }
}

/// Whether `migration` belongs to `app`: listed by it, or naming it.
fn belongs(app: &PortfolioApp, migration: &MigrationFacts) -> bool {
    app.namespace().as_deref() == Some(migration.namespace.as_str())
        && (migration.app_ref.as_deref() == Some(app.name_any().as_str())
            || app.spec.migrations.contains(&migration.name))
}

/// The migrations of `app` among `migrations` (any namespace), by name:
/// the listed ones (as [`State::Missing`] when absent) and those whose
/// `appRef` names it.
pub fn migrations_of(app: &PortfolioApp, migrations: &[MigrationFacts]) -> Vec<GateInfo> {
    let mut found: Vec<GateInfo> = migrations
        .iter()
        .filter(|migration| belongs(app, migration))
        .map(|migration| GateInfo {
            name: migration.name.clone(),
            phase: Some(migration.phase),
            dry_run: migration.dry_run,
            state: migration.state(),
        })
        .collect();
    for name in &app.spec.migrations {
        if !found.iter().any(|gate| &gate.name == name) {
            found.push(GateInfo {
                name: name.clone(),
                phase: None,
                dry_run: false,
                state: State::Missing,
            });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found.dedup_by(|a, b| a.name == b.name);
    found
}

/// The apps (among `apps`, any namespace) that `migration` gates: the one
/// its `appRef` names, and those listing it.
pub fn apps_of<'a>(
    migration: &MigrationFacts,
    apps: impl IntoIterator<Item = &'a PortfolioApp>,
) -> Vec<ObjectRef<PortfolioApp>> {
    apps.into_iter()
        .filter(|app| belongs(app, migration))
        .map(ObjectRef::from_obj)
        .collect()
}

/// Why a new pod template is held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Expand migrations have not succeeded yet (or cannot be seen yet).
    Pending {
        /// Which, and in what phase.
        message: String,
    },
    /// An expand migration failed: only fixing it (or reverting the app's
    /// change) lets the app move on.
    Failed {
        /// Which, and its `lastError`.
        message: String,
    },
}

impl Hold {
    /// The condition reason it is reported with.
    pub fn failure(&self) -> Failure {
        match self {
            Hold::Pending { .. } => Failure::MigrationsPending,
            Hold::Failed { .. } => Failure::MigrationFailed,
        }
    }

    /// What it says, for people.
    pub fn message(&self) -> &str {
        match self {
            Hold::Pending { message } | Hold::Failed { message } => message,
        }
    }
}

/// Whether the app's migrations hold a new pod template back, and why;
/// `None` lets it roll out.
pub fn hold(gates: &[GateInfo]) -> Option<Hold> {
    let failed: Vec<String> = gates
        .iter()
        .filter(|gate| gate.holds_rollout())
        .filter_map(|gate| match &gate.state {
            State::Failed(error) => Some(format!(
                "{} failed: {}",
                gate.name,
                error.as_deref().unwrap_or("no error recorded")
            )),
            _ => None,
        })
        .collect();
    let pending: Vec<String> = gates
        .iter()
        .filter(|gate| gate.holds_rollout() && !matches!(gate.state, State::Failed(_)))
        .map(GateInfo::describe)
        .collect();
    if !failed.is_empty() {
        let mut message = format!(
            "expand migration {}; the new pod template is held until it succeeds (fix the migration, or revert the change of the app)",
            failed.join("; ")
        );
        if !pending.is_empty() {
            message.push_str(&format!("; also waiting for {}", pending.join(", ")));
        }
        return Some(Hold::Failed { message });
    }
    if pending.is_empty() {
        return None;
    }
    Some(Hold::Pending {
        message: format!(
            "the new pod template waits for expand migration{} {}",
            if pending.len() == 1 { "" } else { "s" },
            pending.join(", ")
        ),
    })
}

/// Whether a contract migration of `app` may start: only once the app
/// exists, its controller has seen its current spec, it is Ready for that
/// spec (the rollout completed: the Deployment saw its current generation,
/// every replica is updated and available, no old pod is left), it is not
/// held by a migration, and every expand migration of it succeeded for its
/// current spec. `migrations` may hold any migrations; the app's are picked
/// out. The error says what is awaited.
pub fn contract_may_start(
    app: Option<&PortfolioApp>,
    migrations: &[Arc<DatabaseMigration>],
) -> Result<(), String> {
    let Some(app) = app else {
        return Err("waiting for its PortfolioApp, which does not exist".to_owned());
    };
    let name = app.name_any();
    let generation = app.metadata.generation;
    let status = app.status.as_ref();
    if generation.is_none() || status.and_then(|s| s.observed_generation) != generation {
        return Err(format!(
            "waiting for the operator to reconcile the current spec of PortfolioApp {name}"
        ));
    }
    let conditions = status.map_or(&[][..], |s| &s.conditions[..]);
    let find = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.observed_generation == generation)
    };
    let held = find(PROGRESSING).is_some_and(|c| c.reason == Failure::MigrationsPending.reason());
    let ready = find(READY).is_some_and(|c| c.status == "True");
    if !ready || held {
        return Err(not_rolled_out(
            &name,
            find(READY),
            find(PROGRESSING),
            find(DEGRADED),
        ));
    }
    let facts: Vec<MigrationFacts> = migrations.iter().map(|m| MigrationFacts::of(m)).collect();
    let waiting: Vec<String> = migrations_of(app, &facts)
        .iter()
        .filter(|gate| gate.holds_rollout())
        .map(GateInfo::describe)
        .collect();
    if !waiting.is_empty() {
        return Err(format!(
            "waiting for the expand migrations of PortfolioApp {name}: {}",
            waiting.join(", ")
        ));
    }
    Ok(())
}

/// Why an app's conditions (of its current generation) do not say its
/// rollout completed.
fn not_rolled_out(
    name: &str,
    ready: Option<&Condition>,
    progressing: Option<&Condition>,
    degraded: Option<&Condition>,
) -> String {
    if let Some(degraded) = degraded.filter(|c| c.status == "True") {
        let what = if degraded.reason == Failure::RolloutFailed.reason() {
            format!("the rollout of PortfolioApp {name} failed")
        } else {
            format!("PortfolioApp {name} is degraded ({})", degraded.reason)
        };
        return format!(
            "{what}: {}; contract will not start until it is fixed",
            degraded.message
        );
    }
    if let Some(held) = progressing.filter(|c| c.reason == Failure::MigrationsPending.reason()) {
        return format!(
            "waiting for PortfolioApp {name}, whose rollout is held: {}",
            held.message
        );
    }
    match ready {
        Some(ready) if ready.reason == "Paused" => format!(
            "waiting for PortfolioApp {name}, which is paused: contract starts once it is resumed and rolled out"
        ),
        Some(ready) => format!(
            "waiting for the rollout of PortfolioApp {name}: {}",
            ready.message
        ),
        None => {
            format!("waiting for the rollout of PortfolioApp {name}: its status does not say yet")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use portfolio_api::{
        DatabaseMigrationSpec, DatabaseMigrationStatus, LocalObjectRef, PortfolioAppSpec,
        PortfolioAppStatus,
    };

    fn app(name: &str, listed: &[&str]) -> PortfolioApp {
        let mut app = PortfolioApp::new(name, PortfolioAppSpec::default());
        app.metadata.namespace = Some("demo".into());
        app.metadata.generation = Some(4);
        app.spec.migrations = listed.iter().map(|s| (*s).to_owned()).collect();
        app
    }

    fn migration(
        name: &str,
        phase: MigrationPhase,
        app_ref: Option<&str>,
        status: Option<(MigrationStatusPhase, i64)>,
    ) -> DatabaseMigration {
        let spec: DatabaseMigrationSpec = serde_json::from_value(serde_json::json!({
            "tool": "flyway",
            "database": {"url": "jdbc:postgresql://db/shop", "credentialsSecretRef": {"name": "db"}},
            "source": {"image": "example/migrations:1"},
        }))
        .expect("a migration spec");
        let mut migration = DatabaseMigration::new(name, spec);
        migration.metadata.namespace = Some("demo".into());
        migration.metadata.generation = Some(2);
        migration.spec.phase = phase;
        migration.spec.app_ref = app_ref.map(|name| LocalObjectRef { name: name.into() });
        migration.status = status.map(|(phase, observed)| DatabaseMigrationStatus {
            phase: Some(phase),
            observed_generation: Some(observed),
            last_error: (phase == MigrationStatusPhase::Failed)
                .then(|| "V2__add_column.sql: syntax error at or near \"COLUMN\"".to_owned()),
            ..Default::default()
        });
        migration
    }

    fn facts(migrations: &[DatabaseMigration]) -> Vec<MigrationFacts> {
        migrations.iter().map(MigrationFacts::of).collect()
    }

    use MigrationPhase::{Contract, Expand};
    use MigrationStatusPhase::{Failed, Running, Succeeded};

    #[test]
    fn an_app_has_the_migrations_it_lists_and_those_naming_it() {
        let all = facts(&[
            migration("listed", Expand, None, None),
            migration("naming", Contract, Some("shop"), None),
            migration("both", Expand, Some("shop"), None),
            migration("other-app", Expand, Some("cart"), None),
        ]);
        let mut elsewhere = migration("elsewhere", Expand, Some("shop"), None);
        elsewhere.metadata.namespace = Some("other".into());
        let mut all = all;
        all.push(MigrationFacts::of(&elsewhere));
        let gates = migrations_of(&app("shop", &["listed", "both", "gone"]), &all);
        let names: Vec<(&str, Option<MigrationPhase>, &str)> = gates
            .iter()
            .map(|g| (g.name.as_str(), g.phase, g.state.label()))
            .collect();
        assert_eq!(
            names,
            [
                ("both", Some(Expand), "Pending"),
                ("gone", None, MISSING),
                ("listed", Some(Expand), "Pending"),
                ("naming", Some(Contract), "Pending"),
            ]
        );

        // And the other way round, for the watch: a migration maps to its apps.
        let apps = [
            app("shop", &["listed"]),
            app("cart", &[]),
            app("lister", &["naming"]),
        ];
        let names = |m: &MigrationFacts| -> Vec<String> {
            apps_of(m, apps.iter())
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        assert_eq!(names(&all[0]), ["shop"]);
        assert_eq!(names(&all[1]), ["shop", "lister"]);
        assert_eq!(names(&all[3]), ["cart"]);
        assert!(names(&all[4]).is_empty(), "another namespace");
    }

    #[test]
    fn only_a_status_of_the_current_spec_counts() {
        let state = |status| MigrationFacts::of(&migration("m", Expand, None, status)).state();
        assert_eq!(state(None), State::Pending("Pending"));
        assert_eq!(state(Some((Succeeded, 2))), State::Succeeded);
        assert_eq!(
            state(Some((Succeeded, 1))),
            State::Pending("Pending"),
            "succeeded for an older spec"
        );
        assert_eq!(state(Some((Running, 2))), State::Pending("Running"));
        assert!(matches!(state(Some((Failed, 2))), State::Failed(Some(e)) if e.contains("syntax")));
        assert_eq!(state(Some((Failed, 1))), State::Pending("Pending"));
    }

    #[test]
    fn untyped_migrations_read_like_typed_ones_and_leniently() {
        let typed = migration("m", Contract, Some("shop"), Some((Failed, 2)));
        let mut dry = typed.clone();
        dry.spec.dry_run = true;
        for migration in [typed, dry] {
            let object: DynamicObject =
                serde_json::from_value(serde_json::to_value(&migration).expect("json"))
                    .expect("dynamic");
            assert_eq!(
                MigrationFacts::from_dynamic(&object),
                MigrationFacts::of(&migration)
            );
        }
        // A migration that no longer parses as the type still gates, as expand.
        let broken: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "portfolio.dev/v1alpha1", "kind": "DatabaseMigration",
            "metadata": {"name": "broken", "namespace": "demo", "generation": 3},
            "spec": {"tool": 7, "phase": "sideways", "appRef": {"name": "shop"}},
            "status": {"phase": "Exploded", "observedGeneration": 3},
        }))
        .expect("dynamic");
        let facts = MigrationFacts::from_dynamic(&broken);
        assert_eq!(facts.phase, Expand);
        assert_eq!(facts.state(), State::Pending("Pending"));
        let gates = migrations_of(&app("shop", &[]), &[facts]);
        assert!(gates[0].holds_rollout());
    }

    #[test]
    fn expand_migrations_hold_rollouts_until_they_succeed() {
        let shop = app("shop", &["v2-expand", "v2-contract"]);
        let gates_with = |expand: Option<(MigrationStatusPhase, i64)>| {
            migrations_of(
                &shop,
                &facts(&[
                    migration("v2-expand", Expand, None, expand),
                    migration("v2-contract", Contract, None, None),
                    migration("v2-check", Expand, Some("shop"), None),
                ]),
            )
        };
        // The dry run never gates; the pending contract does not hold the rollout.
        let mut check = migration("v2-check", Expand, Some("shop"), None);
        check.spec.dry_run = true;
        let all = |expand| {
            let mut all = facts(&[
                migration("v2-expand", Expand, None, expand),
                migration("v2-contract", Contract, None, None),
            ]);
            all.push(MigrationFacts::of(&check));
            migrations_of(&shop, &all)
        };
        let running = all(Some((Running, 2)));
        assert_eq!(
            hold(&running),
            Some(Hold::Pending {
                message: "the new pod template waits for expand migration v2-expand (Running)"
                    .into()
            })
        );
        let statuses: Vec<MigrationGate> = running.iter().map(GateInfo::gate_status).collect();
        assert_eq!(
            statuses,
            [
                MigrationGate {
                    name: "v2-check".into(),
                    phase: "Pending".into(),
                    ready: true
                },
                MigrationGate {
                    name: "v2-contract".into(),
                    phase: "Pending".into(),
                    ready: true
                },
                MigrationGate {
                    name: "v2-expand".into(),
                    phase: "Running".into(),
                    ready: false
                },
            ]
        );
        assert_eq!(hold(&all(Some((Succeeded, 2)))), None);
        assert!(
            matches!(hold(&all(Some((Succeeded, 1)))), Some(Hold::Pending { .. })),
            "a success of an older spec does not open the gate"
        );
        let failed = hold(&all(Some((Failed, 2)))).expect("held");
        assert_eq!(failed.failure(), Failure::MigrationFailed);
        assert!(
            failed
                .message()
                .contains("v2-expand failed: V2__add_column.sql: syntax error"),
            "{}",
            failed.message()
        );
        // A listed migration that does not exist may be an expand one: it holds.
        let missing = hold(&migrations_of(&app("shop", &["later"]), &[])).expect("held");
        assert!(missing.message().contains("later (Missing)"), "{missing:?}");
        // Two pending are both named.
        let two = gates_with(None);
        assert_eq!(
            hold(&two)
                .map(|h| h.message().to_owned())
                .unwrap_or_default(),
            "the new pod template waits for expand migrations v2-check (Pending), v2-expand (Pending)"
        );
    }

    fn condition(
        type_: &str,
        status: &str,
        reason: &str,
        message: &str,
        generation: i64,
    ) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(generation),
            last_transition_time: Time(Timestamp::from_second(1).expect("time")),
        }
    }

    fn with_status(
        mut app: PortfolioApp,
        observed: i64,
        conditions: Vec<Condition>,
    ) -> PortfolioApp {
        app.status = Some(PortfolioAppStatus {
            observed_generation: Some(observed),
            conditions,
            ..Default::default()
        });
        app
    }

    fn ready(generation: i64) -> Vec<Condition> {
        vec![
            condition("Ready", "True", "Available", "3 pods ready", generation),
            condition("Progressing", "False", "RolloutComplete", "", generation),
            condition("Degraded", "False", "AsExpected", "", generation),
        ]
    }

    #[test]
    fn contract_starts_only_after_a_completed_rollout_and_every_expand() {
        let shop = app("shop", &["v2-expand"]);
        let contract = Arc::new(migration("v2-contract", Contract, Some("shop"), None));
        let expand = |status| Arc::new(migration("v2-expand", Expand, None, status));
        let done = [expand(Some((Succeeded, 2))), Arc::clone(&contract)];

        assert_eq!(
            contract_may_start(Some(&with_status(shop.clone(), 4, ready(4))), &done),
            Ok(())
        );
        assert_eq!(
            contract_may_start(None, &done),
            Err("waiting for its PortfolioApp, which does not exist".into())
        );
        let err = |app: PortfolioApp, migrations: &[Arc<DatabaseMigration>]| {
            contract_may_start(Some(&app), migrations).expect_err("must wait")
        };
        // The app controller has not seen the current spec, or says nothing yet.
        assert!(
            err(with_status(shop.clone(), 3, ready(3)), &done)
                .contains("reconcile the current spec")
        );
        assert!(err(shop.clone(), &done).contains("reconcile the current spec"));
        // Ready of an older generation does not count.
        let mut stale = ready(3);
        stale[0].observed_generation = Some(3);
        assert!(err(with_status(shop.clone(), 4, stale), &done).contains("does not say yet"));
        // Rolling out.
        let rolling = vec![
            condition(
                "Ready",
                "False",
                "RollingOut",
                "1 of 3 pods updated, 1 available",
                4,
            ),
            condition(
                "Progressing",
                "True",
                "RollingOut",
                "1 of 3 pods updated, 1 available",
                4,
            ),
            condition("Degraded", "False", "AsExpected", "", 4),
        ];
        assert_eq!(
            err(with_status(shop.clone(), 4, rolling), &done),
            "waiting for the rollout of PortfolioApp shop: 1 of 3 pods updated, 1 available"
        );
        // A failed rollout never lets contract start.
        let failed = vec![
            condition(
                "Ready",
                "False",
                "RolloutFailed",
                "ReplicaSet \"shop-2\" has timed out progressing.",
                4,
            ),
            condition(
                "Progressing",
                "False",
                "RolloutFailed",
                "ReplicaSet \"shop-2\" has timed out progressing.",
                4,
            ),
            condition(
                "Degraded",
                "True",
                "RolloutFailed",
                "ReplicaSet \"shop-2\" has timed out progressing.",
                4,
            ),
        ];
        let message = err(with_status(shop.clone(), 4, failed), &done);
        assert!(
            message.starts_with("the rollout of PortfolioApp shop failed: ReplicaSet"),
            "{message}"
        );
        assert!(
            message.ends_with("contract will not start until it is fixed"),
            "{message}"
        );
        // Held by expand.
        let held = vec![
            condition(
                "Ready",
                "False",
                "MigrationsPending",
                "the new pod template waits for expand migration v2-expand (Running)",
                4,
            ),
            condition(
                "Progressing",
                "True",
                "MigrationsPending",
                "the new pod template waits for expand migration v2-expand (Running)",
                4,
            ),
            condition("Degraded", "False", "AsExpected", "", 4),
        ];
        assert!(err(with_status(shop.clone(), 4, held), &done).contains("whose rollout is held"));
        // Paused.
        let paused = vec![
            condition("Ready", "False", "Paused", "spec.paused is set", 4),
            condition("Progressing", "False", "Paused", "spec.paused is set", 4),
            condition("Degraded", "False", "Paused", "spec.paused is set", 4),
        ];
        assert!(err(with_status(shop.clone(), 4, paused), &done).contains("paused"));
        // Ready, but an expand migration has not succeeded for its current
        // spec (its spec changed after the rollout).
        let message = err(
            with_status(shop.clone(), 4, ready(4)),
            &[expand(Some((Succeeded, 1))), Arc::clone(&contract)],
        );
        assert_eq!(
            message,
            "waiting for the expand migrations of PortfolioApp shop: v2-expand (Pending)"
        );
        // A dry-run expand is not waited for.
        let mut dry = migration("v2-check", Expand, Some("shop"), None);
        dry.spec.dry_run = true;
        let with_dry = [expand(Some((Succeeded, 2))), Arc::new(dry), contract];
        assert_eq!(
            contract_may_start(Some(&with_status(shop, 4, ready(4))), &with_dry),
            Ok(())
        );
    }
}
