//! `DatabaseMigration`: a schema migration run by Flyway or Liquibase as Kubernetes Jobs,
//! ordered with an app's rollout (expand before it, contract after it).

// kube's `printcolumn(name = …, type_ = …)` repeats keys by design.
#![allow(clippy::duplicated_attributes)]

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::app::PluginSelector;

/// Kind of the migration resource.
pub const MIGRATION_KIND: &str = "DatabaseMigration";

/// The desired migration. A maintenance step (Flyway `repair`, Liquibase
/// `release-locks`) that the platform's settings do not allow can be allowed
/// for one migration with the annotation `portfolio.dev/allow-maintenance: <step>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::CustomResource, kube::KubeSchema))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "portfolio.dev",
        version = "v1alpha1",
        kind = "DatabaseMigration",
        namespaced,
        shortname = "dbm",
        category = "portfolio",
        status = "DatabaseMigrationStatus",
        doc = "A schema migration run by Flyway or Liquibase as Kubernetes Jobs, ordered with an app's rollout.",
        printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
        printcolumn(name = "Tool", type_ = "string", json_path = ".spec.tool"),
        printcolumn(
            name = "Version",
            type_ = "string",
            json_path = ".status.appliedVersion"
        ),
        printcolumn(name = "App", type_ = "string", json_path = ".spec.appRef.name"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[cfg_attr(
    feature = "kube",
    x_kube(
        validation = Rule::new("self.tool == 'flyway' ? !has(self.liquibase) : !has(self.flyway)")
            .message("set only the options of the chosen tool: spec.flyway for flyway, spec.liquibase for liquibase"),
        validation = Rule::new("self.tool != 'liquibase' || has(self.liquibase)")
            .message("spec.liquibase.changelogFile is required when the tool is liquibase"),
        validation = Rule::new("self.approval != 'Manual' || !has(self.approvedPlanHash) || self.approvedPlanHash.matches('^sha256:[0-9a-f]{64}$')")
            .message("spec.approvedPlanHash must be a plan hash as shown in status.planHash (sha256:…)")
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseMigrationSpec {
    /// The migration tool: `flyway` or `liquibase`.
    pub tool: MigrationTool,

    /// The strategy plugin; the built-in `flyway` or `liquibase` strategy (by
    /// `tool`) when unset. Per migration, the built-in strategies accept only
    /// the settings `resources` and `ttlSecondsAfterFinished`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<PluginSelector>,

    /// The database to migrate.
    pub database: DatabaseRef,

    /// Where the migrations (SQL files or changelogs) come from.
    pub source: MigrationSource,

    /// Flyway options (only with `tool: flyway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flyway: Option<FlywayOptions>,

    /// Liquibase options (required with `tool: liquibase`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquibase: Option<LiquibaseOptions>,

    /// `expand` runs before the app's new version rolls out (additive changes);
    /// `contract` runs after it is available (removals).
    #[serde(default)]
    pub phase: MigrationPhase,

    /// The PortfolioApp whose rollouts this migration is ordered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_ref: Option<LocalObjectRef>,

    /// `Automatic` runs the plan as soon as it is made; `Manual` waits until
    /// `approvedPlanHash` equals `status.planHash`.
    #[serde(default)]
    pub approval: Approval,

    /// The plan hash a person approved (copy it from `status.planHash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(length(max = 71)))]
    pub approved_plan_hash: Option<String>,

    /// Only plan and validate; change nothing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,

    /// How many times a failed, retryable step is run again before the
    /// migration is `Failed`.
    #[serde(default = "default_backoff_limit")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0, max = 20)))]
    pub backoff_limit: i32,

    /// How long one step may run, e.g. `90s`, `15m`, `1h30m`.
    #[serde(default = "default_timeout")]
    #[cfg_attr(
        feature = "kube",
        schemars(
            regex(pattern = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"),
            length(min = 2, max = 16)
        )
    )]
    pub timeout: String,

    /// Image of the migration tool, replacing the strategy's pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 512)))]
    pub image: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn default_backoff_limit() -> i32 {
    3
}

fn default_timeout() -> String {
    "15m".to_owned()
}

/// A migration tool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum MigrationTool {
    /// Flyway (SQL files named `V<version>__<description>.sql`).
    #[default]
    Flyway,
    /// Liquibase (a changelog).
    Liquibase,
}

impl MigrationTool {
    /// As written in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationTool::Flyway => "flyway",
            MigrationTool::Liquibase => "liquibase",
        }
    }
}

/// When a migration runs relative to its app's rollout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum MigrationPhase {
    /// Before the new version rolls out: additive, backwards-compatible changes.
    #[default]
    Expand,
    /// After the new version is available: removals the old version needed.
    Contract,
}

/// Whether a plan runs on its own or waits for a person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum Approval {
    /// Run the plan as soon as it is made.
    #[default]
    Automatic,
    /// Wait until `spec.approvedPlanHash` equals `status.planHash`.
    Manual,
}

/// The database and the Secret holding its credentials.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseRef {
    /// JDBC URL, e.g. `jdbc:postgresql://db.shop.svc:5432/shop`. Credentials
    /// never go here: a URL with a user or password in it is refused.
    #[cfg_attr(
        feature = "kube",
        schemars(regex(pattern = r"^jdbc:[a-z0-9]+:[^\s]+$"), length(max = 1024))
    )]
    pub url: String,
    /// The Secret (in the migration's namespace) with the user name and password.
    pub credentials_secret_ref: CredentialsRef,
}

/// A Secret with a user name and a password.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRef {
    /// Name of the Secret.
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 253)))]
    pub name: String,
    /// Key holding the user name.
    #[serde(default = "default_username_key")]
    pub username_key: String,
    /// Key holding the password.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

fn default_username_key() -> String {
    "username".to_owned()
}

fn default_password_key() -> String {
    "password".to_owned()
}

/// Where migrations come from: a ConfigMap, or an image that contains them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(
    feature = "kube",
    x_kube(
        validation = Rule::new("has(self.configMapRef) != has(self.image)")
            .message("set exactly one of source.configMapRef and source.image")
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSource {
    /// A ConfigMap whose keys are the SQL files or the changelog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<LocalObjectRef>,
    /// An image that contains the migrations under `path`; it must contain
    /// `cp`, which copies them out for the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Directory of the migrations inside the image (or where the ConfigMap
    /// is mounted); not a system directory such as `/tmp` or `/usr`.
    #[serde(default = "default_source_path")]
    #[cfg_attr(feature = "kube", schemars(regex(pattern = r"^/[^\s]*$")))]
    pub path: String,
}

fn default_source_path() -> String {
    "/migrations".to_owned()
}

/// A reference to an object in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub struct LocalObjectRef {
    /// Name of the object, in the namespace of the object that refers to it.
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 253)))]
    pub name: String,
}

/// Settings of a Flyway run (`spec.flyway`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FlywayOptions {
    /// Locations to scan, relative to the source path (`filesystem:` is
    /// added); the source path itself when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<String>,
    /// Schemas Flyway manages; the first holds its history table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// Migrate up to this version (`latest` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Baseline a non-empty schema without history on first migrate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub baseline_on_migrate: bool,
    /// Allow migrations out of order.
    #[serde(default, skip_serializing_if = "is_false")]
    pub out_of_order: bool,
    /// Placeholder values substituted in the SQL.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub placeholders: BTreeMap<String, String>,
    /// Validate applied migrations against the available ones before migrating.
    #[serde(default = "default_true")]
    pub validate_on_migrate: bool,
}

impl Default for FlywayOptions {
    fn default() -> Self {
        FlywayOptions {
            locations: Vec::new(),
            schemas: Vec::new(),
            target: None,
            baseline_on_migrate: false,
            out_of_order: false,
            placeholders: BTreeMap::new(),
            validate_on_migrate: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Settings of a Liquibase run (`spec.liquibase`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LiquibaseOptions {
    /// The changelog, relative to the source path, e.g. `changelog.yaml`.
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 512)))]
    pub changelog_file: String,
    /// Contexts to run (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<String>,
    /// A label expression selecting change sets (all when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Values of the changelog's `${name}` parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// Where a migration is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum MigrationStatusPhase {
    /// Not looked at yet.
    #[default]
    Pending,
    /// The plan-only step runs.
    Planning,
    /// Waiting for `spec.approvedPlanHash`.
    AwaitingApproval,
    /// The migration runs.
    Running,
    /// Every step of the plan succeeded.
    Succeeded,
    /// Failed for good (see `lastError`).
    Failed,
}

/// One step of a plan, as shown in status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PlanStepSummary {
    /// The step's idempotency key.
    pub key: String,
    /// `expand`, `contract`, `plan-only` or `maintenance`.
    pub phase: String,
    /// What the step does, as the strategy describes it.
    pub description: String,
}

/// One finished run, kept in a bounded history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MigrationRun {
    /// Hash of the plan that ran (`sha256:…`).
    pub plan_hash: String,
    /// Key of the step that ran, e.g. `plan` or `migrate`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub step: String,
    /// The Job that ran it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job: String,
    /// `Succeeded`, `Failed` or `LockHeld`.
    pub result: String,
    /// Schema version after the run, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_version: Option<String>,
    /// When it started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// What happened, in one line.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The observed state of a migration.
#[cfg(feature = "kube")]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseMigrationStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the migration is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MigrationStatusPhase>,
    /// `Ready`, `Progressing`, `Degraded`, plus the strategy's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// Hash of the current plan (`sha256:…`); approve it by copying it to
    /// `spec.approvedPlanHash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    /// The plan's steps (at most 20 shown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PlanStepSummary>,
    /// The strategy's summary of the plan (at most 4 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_summary: Option<String>,
    /// Schema version now applied, when the tool reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_version: Option<String>,
    /// Attempts of the current step so far.
    #[serde(default)]
    pub attempts: i32,
    /// Key of the step running now (or next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    /// Name of the Job running now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_job: Option<String>,
    /// Keys of the steps of the current plan that succeeded, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completed_steps: Vec<String>,
    /// When the next attempt may start (RFC 3339), after a retryable failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The last runs, newest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<MigrationRun>,
    /// The last failure, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[cfg(all(test, feature = "kube"))]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn the_crd_carries_names_columns_and_rules() {
        let crd = serde_json::to_value(DatabaseMigration::crd()).unwrap();
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "dbm");
        assert_eq!(crd["spec"]["names"]["categories"][0], "portfolio");
        let version = &crd["spec"]["versions"][0];
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(columns, ["Phase", "Tool", "Version", "App", "Age"]);
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let rules = spec["x-kubernetes-validations"].as_array().unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            spec["properties"]["tool"]["enum"],
            serde_json::json!(["flyway", "liquibase"])
        );
        assert_eq!(spec["properties"]["timeout"]["default"], "15m");
        let source = &spec["properties"]["source"];
        assert!(
            source["x-kubernetes-validations"][0]["rule"]
                .as_str()
                .unwrap()
                .contains("configMapRef")
        );
    }
}
