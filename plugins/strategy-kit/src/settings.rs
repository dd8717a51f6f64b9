//! The strategies' settings: chosen by the platform team in the plugin's
//! registration, with a few per-object overrides from `spec.strategy.settings`.
//!
//! Unknown settings are refused rather than ignored: a misspelt
//! `allowRepiar: true` silently doing nothing is worse than an error.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use portfolio_api::MigrationTool;
use serde::{Deserialize, Serialize};

use crate::Invalid;
use crate::names::is_dns_subdomain;

/// The settings object as written (`{}` when none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Image of the migration tool, replacing the built-in default.
    #[serde(default)]
    pub image: Option<String>,
    /// Flyway: run `repair` after a failed non-transactional migration.
    #[serde(default)]
    pub allow_repair: Option<bool>,
    /// Liquibase: run `release-locks` when a crashed run left the lock held.
    #[serde(default)]
    pub allow_release_locks: Option<bool>,
    /// Liquibase: how long to wait for the changelog lock, in minutes.
    #[serde(default)]
    pub lock_wait_minutes: Option<u32>,
    /// Requests and limits of the Job's containers.
    #[serde(default)]
    pub resources: Option<Resources>,
    /// Delete finished Jobs after this many seconds (kept until the migration is deleted when unset).
    #[serde(default)]
    pub ttl_seconds_after_finished: Option<i32>,
    /// ServiceAccount the Jobs run as (the namespace's `default` when unset).
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Numeric user the containers run as.
    #[serde(default)]
    pub run_as_user: Option<i64>,
    /// Secrets (in the migration's namespace) used to pull the images.
    #[serde(default)]
    pub image_pull_secrets: Option<Vec<String>>,
    /// `IfNotPresent` (default), `Always` or `Never`.
    #[serde(default)]
    pub image_pull_policy: Option<String>,
}

/// What `spec.strategy.settings` may set for one migration: only what
/// affects that migration's own Jobs, never what the platform team guards
/// (images, repair, service accounts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectSettings {
    /// Requests and limits, replacing the plugin's.
    pub resources: Option<Resources>,
    /// Delete finished Jobs after this many seconds.
    pub ttl_seconds_after_finished: Option<i32>,
}

/// Container resources: quantities by resource name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// What the scheduler reserves.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// What the container may use at most.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// When the kubelet pulls an image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull only when the node lacks the image (default: tags are pinned).
    #[default]
    IfNotPresent,
    /// Pull on every start.
    Always,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The policy Kubernetes spells `name`.
    pub fn from_name(name: &str) -> Option<PullPolicy> {
        match name {
            "IfNotPresent" => Some(PullPolicy::IfNotPresent),
            "Always" => Some(PullPolicy::Always),
            "Never" => Some(PullPolicy::Never),
            _ => None,
        }
    }

    /// As Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
            PullPolicy::Never => "Never",
        }
    }
}

/// A tool's built-in defaults.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    /// The tool.
    pub tool: MigrationTool,
    /// The pinned image.
    pub image: &'static str,
    /// The user the containers run as; the tool's files must be readable by it.
    pub run_as_user: i64,
}

/// Everything the Jobs need from the settings, with defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSettings {
    /// The tool's image.
    pub image: String,
    /// Requests and limits of every container.
    pub resources: Resources,
    /// `ttlSecondsAfterFinished` of the Jobs.
    pub ttl_seconds_after_finished: Option<i32>,
    /// `serviceAccountName` of the pods.
    pub service_account_name: Option<String>,
    /// `runAsUser` and `runAsGroup` of the pods.
    pub run_as_user: i64,
    /// `imagePullSecrets` of the pods.
    pub image_pull_secrets: Vec<String>,
    /// `imagePullPolicy` of the containers.
    pub image_pull_policy: PullPolicy,
}

/// Requests and limits when the settings name none: enough for a JVM tool
/// on a modest schema. Memory is guaranteed (request = limit) so a busy node
/// does not OOM-kill a migration halfway; CPU is not capped.
pub fn default_resources() -> Resources {
    // `insert` rather than `from([…])`: the parser already links it, and
    // `from` would add a sort and a bulk build to the component.
    let mut resources = Resources::default();
    resources
        .requests
        .insert("cpu".to_owned(), "100m".to_owned());
    resources
        .requests
        .insert("memory".to_owned(), "512Mi".to_owned());
    resources
        .limits
        .insert("memory".to_owned(), "512Mi".to_owned());
    resources
}

impl Settings {
    /// Parse and check the settings JSON of a `tool` strategy.
    pub fn parse(text: &str, tool: MigrationTool) -> Result<Settings, Invalid> {
        let text = if text.trim().is_empty() { "{}" } else { text };
        let settings: Settings = crate::spec::parse_json("settings", text)?;
        settings.check(tool)?;
        Ok(settings)
    }

    fn check(&self, tool: MigrationTool) -> Result<(), Invalid> {
        let foreign = match tool {
            MigrationTool::Flyway => [
                ("allowReleaseLocks", self.allow_release_locks.is_some()),
                ("lockWaitMinutes", self.lock_wait_minutes.is_some()),
            ],
            MigrationTool::Liquibase => [("allowRepair", self.allow_repair.is_some()), ("", false)],
        };
        for (name, set) in foreign {
            if set {
                return Err(Invalid::new(
                    format!("settings.{name}"),
                    format!("is not a setting of the {} strategy", tool.as_str()),
                ));
            }
        }
        if let Some(image) = &self.image {
            check_image("settings.image", image)?;
        }
        if let Some(minutes) = self.lock_wait_minutes
            && minutes > 60
        {
            return Err(Invalid::new(
                "settings.lockWaitMinutes",
                "must be at most 60; a lock held longer is stale and needs release-locks",
            ));
        }
        if let Some(resources) = &self.resources {
            check_resources("settings.resources", resources)?;
        }
        check_ttl(
            "settings.ttlSecondsAfterFinished",
            self.ttl_seconds_after_finished,
        )?;
        if let Some(account) = &self.service_account_name
            && !is_dns_subdomain(account)
        {
            return Err(Invalid::new(
                "settings.serviceAccountName",
                format!("{account:?} is not a valid ServiceAccount name"),
            ));
        }
        if let Some(user) = self.run_as_user
            && user <= 0
        {
            return Err(Invalid::new(
                "settings.runAsUser",
                "must be a positive user id: the Jobs never run as root",
            ));
        }
        if let Some(policy) = &self.image_pull_policy
            && PullPolicy::from_name(policy).is_none()
        {
            return Err(Invalid::new(
                "settings.imagePullPolicy",
                format!("{policy:?} is not IfNotPresent, Always or Never"),
            ));
        }
        for (index, secret) in self.image_pull_secrets.iter().flatten().enumerate() {
            if !is_dns_subdomain(secret) {
                return Err(Invalid::new(
                    format!("settings.imagePullSecrets[{index}]"),
                    format!("{secret:?} is not a valid Secret name"),
                ));
            }
        }
        Ok(())
    }

    /// The Jobs' settings: `spec_image` and `object` (from the spec) over these
    /// settings over `defaults`.
    pub fn resolve(
        &self,
        defaults: &Defaults,
        spec_image: Option<&str>,
        object: &ObjectSettings,
    ) -> JobSettings {
        JobSettings {
            image: spec_image
                .or(self.image.as_deref())
                .unwrap_or(defaults.image)
                .to_owned(),
            resources: object
                .resources
                .clone()
                .or_else(|| self.resources.clone())
                .unwrap_or_else(default_resources),
            ttl_seconds_after_finished: object
                .ttl_seconds_after_finished
                .or(self.ttl_seconds_after_finished),
            service_account_name: self.service_account_name.clone(),
            run_as_user: self.run_as_user.unwrap_or(defaults.run_as_user),
            image_pull_secrets: self.image_pull_secrets.clone().unwrap_or_default(),
            image_pull_policy: self
                .image_pull_policy
                .as_deref()
                .and_then(PullPolicy::from_name)
                .unwrap_or_default(),
        }
    }
}

impl ObjectSettings {
    /// Parse and check `spec.strategy.settings` (JSON text), if any.
    pub fn parse(text: Option<&str>) -> Result<ObjectSettings, Invalid> {
        const FIELD: &str = "spec.strategy.settings";
        let Some(text) = text else {
            return Ok(ObjectSettings::default());
        };
        // The same shape as the plugin's settings (one parser, a smaller
        // plugin), of which only two fields are the app team's to set.
        let Settings {
            image,
            allow_repair,
            allow_release_locks,
            lock_wait_minutes,
            resources,
            ttl_seconds_after_finished,
            service_account_name,
            run_as_user,
            image_pull_secrets,
            image_pull_policy,
        } = crate::spec::parse_json(FIELD, text)?;
        let guarded = [
            ("image", image.is_some()),
            ("allowRepair", allow_repair.is_some()),
            ("allowReleaseLocks", allow_release_locks.is_some()),
            ("lockWaitMinutes", lock_wait_minutes.is_some()),
            ("serviceAccountName", service_account_name.is_some()),
            ("runAsUser", run_as_user.is_some()),
            ("imagePullSecrets", image_pull_secrets.is_some()),
            ("imagePullPolicy", image_pull_policy.is_some()),
        ];
        if let Some((name, _)) = guarded.iter().find(|(_, set)| *set) {
            return Err(Invalid::new(
                format!("{FIELD}.{name}"),
                "per migration only resources and ttlSecondsAfterFinished may be set; the rest is the platform team's (the plugin's settings)",
            ));
        }
        if let Some(resources) = &resources {
            check_resources("spec.strategy.settings.resources", resources)?;
        }
        check_ttl(
            "spec.strategy.settings.ttlSecondsAfterFinished",
            ttl_seconds_after_finished,
        )?;
        Ok(ObjectSettings {
            resources,
            ttl_seconds_after_finished,
        })
    }
}

/// Check an image reference: no spaces or odd characters, at most 512 bytes.
pub fn check_image(field: &str, image: &str) -> Result<(), Invalid> {
    let valid = !image.is_empty()
        && image.len() <= 512
        && image.as_bytes()[0].is_ascii_alphanumeric()
        && image.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@')
        });
    if valid {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!(
                "{image:?} is not an image reference such as registry.example/flyway:11 or repo@sha256:…"
            ),
        ))
    }
}

fn check_ttl(field: &str, ttl: Option<i32>) -> Result<(), Invalid> {
    match ttl {
        Some(seconds) if seconds < 0 => Err(Invalid::new(field, "must not be negative")),
        _ => Ok(()),
    }
}

fn check_resources(field: &str, resources: &Resources) -> Result<(), Invalid> {
    for (kind, map) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        for (name, quantity) in map {
            let valid_name = !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'/' | b'_'));
            if !valid_name {
                return Err(Invalid::new(
                    format!("{field}.{kind}"),
                    format!("{name:?} is not a resource name such as cpu or memory"),
                ));
            }
            if !is_quantity(quantity) {
                return Err(Invalid::new(
                    format!("{field}.{kind}.{name}"),
                    format!("{quantity:?} is not a quantity such as 500m, 1, 512Mi or 2Gi"),
                ));
            }
        }
    }
    Ok(())
}

/// Whether `text` is a non-negative Kubernetes quantity (`250m`, `1.5`, `512Mi`, `1e3`).
pub fn is_quantity(text: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let digits = number.bytes().filter(u8::is_ascii_digit).count();
    let dots = number.len() - digits;
    if digits == 0 || dots > 1 || number.len() > 32 {
        return false;
    }
    SUFFIXES.contains(&suffix)
        || suffix.strip_prefix(['e', 'E']).is_some_and(|exponent| {
            !exponent.is_empty() && exponent.bytes().all(|b| b.is_ascii_digit())
        })
}

/// JSON Schema (draft 2020-12) of a `tool` strategy's settings.
///
/// Written compactly: it travels in every `describe` answer and in the
/// component's data, and nobody reads it unformatted.
pub fn schema(defaults: &Defaults) -> String {
    let tool_specific = match defaults.tool {
        MigrationTool::Flyway => concat!(
            r#""allowRepair":{"type":"boolean","default":false,"description":"#,
            r#""Let the operator run flyway repair (the maintenance step) after a failed migration left a failed entry in the schema history, which happens on databases without transactional DDL (MySQL, Oracle). Repair removes the entry; the half-applied changes stay, so only allow it where re-running a migration over them is safe. Without it the migration fails with FailedMigrationNeedsRepair, and a person may allow one repair with the annotation portfolio.dev/allow-maintenance: repair."},"#,
        ),
        MigrationTool::Liquibase => concat!(
            r#""allowReleaseLocks":{"type":"boolean","default":false,"description":"#,
            r#""Let the operator run liquibase release-locks (the maintenance step) when DATABASECHANGELOGLOCK is still held, e.g. after a crashed run. Only safe when nothing else runs Liquibase against the database (an application applying its changelog at start-up does). Without it the migration fails with LockHeld, and a person may allow one release with the annotation portfolio.dev/allow-maintenance: release-locks."},"#,
            r#""lockWaitMinutes":{"type":"integer","minimum":0,"maximum":60,"default":5,"description":"How long Liquibase waits for the changelog lock before giving up (at most half of spec.timeout)."},"#,
        ),
    };
    let tool = defaults.tool.as_str();
    let image = defaults.image;
    let user = defaults.run_as_user;
    format!(
        concat!(
            r#"{{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"{tool} migration strategy settings","type":"object","additionalProperties":false,"properties":{{"#,
            r#""image":{{"type":"string","minLength":1,"maxLength":512,"default":"{image}","description":"Image of {tool}; a DatabaseMigration's spec.image overrides it."}},"#,
            "{tool_specific}",
            r#""resources":{{"type":"object","additionalProperties":false,"properties":{{"requests":{{"type":"object","additionalProperties":{{"type":"string"}}}},"limits":{{"type":"object","additionalProperties":{{"type":"string"}}}}}},"default":{{"requests":{{"cpu":"100m","memory":"512Mi"}},"limits":{{"memory":"512Mi"}}}},"description":"Requests and limits of the Jobs' containers; a migration's spec.strategy.settings.resources overrides them."}},"#,
            r#""ttlSecondsAfterFinished":{{"type":"integer","minimum":0,"description":"Delete finished Jobs after this many seconds; unset keeps them (and their logs) until the DatabaseMigration is deleted."}},"#,
            r#""serviceAccountName":{{"type":"string","maxLength":253,"description":"ServiceAccount of the Jobs' pods (its token is never mounted); the namespace's default when unset."}},"#,
            r#""runAsUser":{{"type":"integer","minimum":1,"default":{user},"description":"User (and group) id the containers run as; the tool's files in the image must be readable by it."}},"#,
            r#""imagePullSecrets":{{"type":"array","items":{{"type":"string"}},"description":"Secrets in the migration's namespace used to pull the tool's and the source's images."}},"#,
            r#""imagePullPolicy":{{"enum":["IfNotPresent","Always","Never"],"default":"IfNotPresent"}}}}}}"#,
        ),
        tool = tool,
        image = image,
        tool_specific = tool_specific,
        user = user,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLYWAY: Defaults = Defaults {
        tool: MigrationTool::Flyway,
        image: "flyway/flyway:1",
        run_as_user: 10001,
    };

    #[test]
    fn empty_settings_give_the_defaults() {
        for text in ["", "{}", "  "] {
            let settings = Settings::parse(text, MigrationTool::Flyway).unwrap();
            let job = settings.resolve(&FLYWAY, None, &ObjectSettings::default());
            assert_eq!(job.image, "flyway/flyway:1");
            assert_eq!(job.run_as_user, 10001);
            assert_eq!(job.resources, default_resources());
            assert_eq!(job.image_pull_policy, PullPolicy::IfNotPresent);
            assert_eq!(job.image_pull_policy.as_str(), "IfNotPresent");
        }
    }

    #[test]
    fn the_spec_overrides_the_settings_which_override_the_defaults() {
        let settings = Settings::parse(
            r#"{"image": "mirror/flyway:1", "resources": {"limits": {"memory": "1Gi"}}, "ttlSecondsAfterFinished": 60}"#,
            MigrationTool::Flyway,
        )
        .unwrap();
        let job = settings.resolve(&FLYWAY, None, &ObjectSettings::default());
        assert_eq!(job.image, "mirror/flyway:1");
        assert_eq!(job.resources.limits["memory"], "1Gi");
        let object = ObjectSettings::parse(Some(
            r#"{"resources": {"requests": {"cpu": "2"}}, "ttlSecondsAfterFinished": 5}"#,
        ))
        .unwrap();
        let job = settings.resolve(&FLYWAY, Some("team/flyway:2"), &object);
        assert_eq!(job.image, "team/flyway:2");
        assert_eq!(job.resources.requests["cpu"], "2");
        assert_eq!(job.ttl_seconds_after_finished, Some(5));
    }

    #[test]
    fn errors_name_the_setting() {
        let cases = [
            (r#"{"allowRepiar": true}"#, "settings.allowRepiar"),
            (r#"{"allowRepair": "yes"}"#, "settings.allowRepair"),
            (
                r#"{"allowReleaseLocks": true}"#,
                "settings.allowReleaseLocks",
            ),
            (r#"{"image": "bad image"}"#, "settings.image"),
            (r#"{"runAsUser": 0}"#, "settings.runAsUser"),
            (
                r#"{"ttlSecondsAfterFinished": -1}"#,
                "settings.ttlSecondsAfterFinished",
            ),
            (
                r#"{"serviceAccountName": "No"}"#,
                "settings.serviceAccountName",
            ),
            (
                r#"{"imagePullSecrets": ["ok", "Not OK"]}"#,
                "settings.imagePullSecrets[1]",
            ),
            (
                r#"{"imagePullPolicy": "Sometimes"}"#,
                "settings.imagePullPolicy",
            ),
            (
                r#"{"resources": {"limits": {"memory": "lots"}}}"#,
                "settings.resources.limits.memory",
            ),
            (
                r#"{"resources": {"limit": {}}}"#,
                "settings.resources.limit",
            ),
            (r#"[]"#, "settings"),
        ];
        for (text, field) in cases {
            let error = Settings::parse(text, MigrationTool::Flyway).unwrap_err();
            assert_eq!(error.field, field, "{text}: {error}");
        }
        let error =
            Settings::parse(r#"{"allowRepair": true}"#, MigrationTool::Liquibase).unwrap_err();
        assert_eq!(error.field, "settings.allowRepair");
        let error =
            Settings::parse(r#"{"lockWaitMinutes": 61}"#, MigrationTool::Liquibase).unwrap_err();
        assert_eq!(error.field, "settings.lockWaitMinutes");
    }

    #[test]
    fn per_object_settings_cannot_reach_guarded_settings() {
        let error = ObjectSettings::parse(Some(r#"{"allowRepair": true}"#)).unwrap_err();
        assert_eq!(error.field, "spec.strategy.settings.allowRepair");
        assert!(error.message.contains("platform team"), "{}", error.message);
        let error = ObjectSettings::parse(Some(r#"{"image": "x"}"#)).unwrap_err();
        assert_eq!(error.field, "spec.strategy.settings.image");
        let error = ObjectSettings::parse(Some(r#"{"resourcez": {}}"#)).unwrap_err();
        assert_eq!(error.field, "spec.strategy.settings.resourcez");
        let error = ObjectSettings::parse(Some(r#"{"resources": {"requests": {"cpu": "-1"}}}"#))
            .unwrap_err();
        assert_eq!(error.field, "spec.strategy.settings.resources.requests.cpu");
    }

    #[test]
    fn quantities() {
        for good in ["1", "250m", "1.5", "512Mi", "2Gi", "1e3", "0", "100k"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "-1", "1..5", "Mi", "1 Gi", "1GiB", "1e", "1.5.5", "ten"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn the_schema_is_json_and_lists_exactly_the_accepted_settings() {
        for (defaults, specific) in [
            (FLYWAY, vec!["allowRepair"]),
            (
                Defaults {
                    tool: MigrationTool::Liquibase,
                    image: "liquibase/liquibase:4",
                    run_as_user: 1001,
                },
                vec!["allowReleaseLocks", "lockWaitMinutes"],
            ),
        ] {
            let schema: serde_json::Value = serde_json::from_str(&schema(&defaults)).unwrap();
            let mut names: Vec<&str> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            names.sort_unstable();
            let mut expected = vec![
                "image",
                "imagePullPolicy",
                "imagePullSecrets",
                "resources",
                "runAsUser",
                "serviceAccountName",
                "ttlSecondsAfterFinished",
            ];
            expected.extend(specific);
            expected.sort_unstable();
            assert_eq!(names, expected);
            assert_eq!(schema["properties"]["image"]["default"], defaults.image);
            // Every property the schema lists is accepted by the parser.
            for name in &names {
                let value = match *name {
                    "image" => r#""a/b:1""#,
                    "imagePullPolicy" => r#""Always""#,
                    "imagePullSecrets" => r#"["s"]"#,
                    "resources" => r#"{"requests": {"cpu": "1"}}"#,
                    "runAsUser" | "ttlSecondsAfterFinished" | "lockWaitMinutes" => "5",
                    "serviceAccountName" => r#""migrator""#,
                    _ => "true",
                };
                let text = format!("{{\"{name}\": {value}}}");
                Settings::parse(&text, defaults.tool).unwrap_or_else(|e| panic!("{text}: {e}"));
            }
        }
    }

    #[test]
    fn image_references() {
        assert!(check_image("x", "flyway/flyway:13.0.0").is_ok());
        assert!(check_image("x", "reg.example:5000/ns/img@sha256:abc").is_ok());
        assert!(check_image("x", "-rm").is_err());
        assert!(check_image("x", "a b").is_err());
    }
}
