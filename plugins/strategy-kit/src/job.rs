//! The Job of one step, serialised from borrowed serde shapes.
//!
//! Every Job the strategies emit has the same skeleton, decided here so both
//! tools get it right once:
//!
//! - `backoffLimit: 0`: the operator owns retries, and decides with
//!   `interpret` whether a failure is worth one;
//! - `activeDeadlineSeconds` from `spec.timeout`;
//! - a `podFailurePolicy` that ignores disruptions (a drained node is not the
//!   migration's fault, and `podReplacementPolicy: Failed` keeps the
//!   replacement from overlapping the old pod) and otherwise fails the Job at
//!   the first non-zero exit, so the Job's `Failed` condition names the
//!   container and its exit code even when no termination message survives;
//! - a restricted pod: non-root, no privilege escalation, all capabilities
//!   dropped, RuntimeDefault seccomp, read-only root filesystem with an
//!   `emptyDir` at `/tmp`, and no ServiceAccount token;
//! - credentials only through `secretKeyRef` environment variables;
//! - the migrations mounted at the source path: the ConfigMap itself, or an
//!   `emptyDir` an init container fills from the source image with `cp`;
//! - the tool run by a small shell wrapper ([`crate::script`]) that writes
//!   its summary to `/dev/termination-log`, with `FallbackToLogsOnError` for
//!   when it cannot.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde::Serialize;

use crate::names::{job_name, label_value};
use crate::settings::{JobSettings, Resources};
use crate::spec::Source;
use crate::{Error, Phase};

/// Directory under which the init container sees the pod's copy of an image source.
pub const SOURCE_COPY_DIR: &str = "/portfolio";

/// Where the init container writes an image source (the `source` volume).
const SOURCE_COPY_TARGET: &str = "/portfolio/source";

/// Name of the init container that copies an image source.
pub const COPY_CONTAINER: &str = "copy-source";

/// Scratch space of the tool (`/tmp`): the wrapper's files, the JVM's temp files.
const WORK_SIZE_LIMIT: &str = "512Mi";

/// Where the kubelet reads the termination message from.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// Value of an environment variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvValue<'a> {
    /// A literal value (never a credential).
    Value(&'a str),
    /// A key of a Secret in the migration's namespace.
    Secret {
        /// The Secret.
        name: &'a str,
        /// The key within the Secret.
        key: &'a str,
    },
}

/// An environment variable of the tool's container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Env<'a> {
    /// The variable's name.
    pub name: &'a str,
    /// A literal, or a reference to a Secret key.
    pub value: EnvValue<'a>,
}

/// Everything that differs between the Jobs of the two tools and their steps.
#[derive(Clone, Copy, Debug)]
pub struct JobRequest<'a> {
    /// The tool: the container's name and the `app.kubernetes.io/name` label.
    pub tool: &'static str,
    /// `metadata.name` of the migration.
    pub migration: &'a str,
    /// `metadata.uid` of the migration.
    pub uid: &'a str,
    /// The step's key.
    pub key: &'static str,
    /// The step's phase.
    pub phase: Phase,
    /// Image, resources and the rest of the settings.
    pub settings: &'a JobSettings,
    /// `activeDeadlineSeconds`.
    pub deadline_seconds: u64,
    /// Where the migrations come from.
    pub source: Source<'a>,
    /// Where the tool finds them.
    pub source_path: &'a str,
    /// The shell program the container runs (`/bin/sh -c`); it must not
    /// contain user input, which travels in `args` and `env` only.
    pub script: &'a str,
    /// The program's arguments (`"$@"`).
    pub args: &'a [String],
    /// The tool's environment.
    pub env: &'a [Env<'a>],
}

/// A Job ready to be planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltJob {
    /// `metadata.name`.
    pub name: String,
    /// The whole Job as JSON text.
    pub json: String,
}

/// Build the Job of `request`.
pub fn build(request: &JobRequest<'_>) -> Result<BuiltJob, Error> {
    let migration_label = label_value(request.migration);
    let labels = Labels {
        name: request.tool,
        component: "database-migration",
        migration: &migration_label,
        step: request.key,
        phase: request.phase.as_str(),
    };
    let mut job = Job {
        api_version: "batch/v1",
        kind: "Job",
        metadata: Metadata { name: None, labels },
        spec: job_spec(request, labels),
    };
    // The name hashes the Job without it, so it changes exactly when the Job would.
    let unnamed = to_json(&job)?;
    let name = job_name(
        request.migration,
        request.uid,
        request.key,
        unnamed.as_bytes(),
    );
    job.metadata.name = Some(&name);
    let json = to_json(&job)?;
    Ok(BuiltJob { name, json })
}

fn to_json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value)
        .map_err(|error| Error::Internal(format!("cannot serialise a Job: {error}")))
}

fn job_spec<'a>(request: &'a JobRequest<'a>, labels: Labels<'a>) -> JobSpec<'a> {
    let settings = request.settings;
    let mut init_containers = Vec::new();
    let source_volume = match request.source {
        Source::ConfigMap(name) => Volume {
            name: "source",
            empty_dir: None,
            config_map: Some(NameRef { name }),
        },
        Source::Image(image) => {
            init_containers.push(Container {
                name: COPY_CONTAINER,
                image,
                image_pull_policy: settings.image_pull_policy.as_str(),
                // `cp` from the source image itself: no shell needed, and the
                // copy keeps the tool's container free of the source image's
                // other files.
                command: vec![
                    "cp".into(),
                    "-R".into(),
                    format!("{}/.", request.source_path),
                    format!("{SOURCE_COPY_TARGET}/"),
                ],
                args: &[],
                env: Vec::new(),
                resources: &settings.resources,
                security_context: ContainerSecurityContext::RESTRICTED,
                termination_message_path: TERMINATION_LOG,
                termination_message_policy: "FallbackToLogsOnError",
                volume_mounts: vec![VolumeMount {
                    name: "source",
                    mount_path: SOURCE_COPY_TARGET,
                    read_only: false,
                }],
            });
            Volume {
                name: "source",
                empty_dir: Some(EmptyDir { size_limit: None }),
                config_map: None,
            }
        }
    };
    let mut env: Vec<EnvVar<'a>> = Vec::with_capacity(request.env.len() + 2);
    // The images' users have homes the read-only root filesystem would refuse.
    env.push(EnvVar {
        name: "HOME",
        value: Some("/tmp"),
        value_from: None,
    });
    // The JVM's default heap is a quarter of the container's memory; the
    // tools are the container's only tenant. The rest is left for metaspace,
    // threads and the JDBC driver. (The JVM notes the option on stderr; the
    // summaries skip that line.)
    env.push(EnvVar {
        name: "JAVA_TOOL_OPTIONS",
        value: Some("-XX:MaxRAMPercentage=70"),
        value_from: None,
    });
    env.extend(request.env.iter().map(|variable| match variable.value {
        EnvValue::Value(value) => EnvVar {
            name: variable.name,
            value: Some(value),
            value_from: None,
        },
        EnvValue::Secret { name, key } => EnvVar {
            name: variable.name,
            value: None,
            value_from: Some(EnvSource {
                secret_key_ref: SecretKeyRef { name, key },
            }),
        },
    }));
    let tool = Container {
        name: request.tool,
        image: &settings.image,
        image_pull_policy: settings.image_pull_policy.as_str(),
        command: vec![
            "/bin/sh".into(),
            "-c".into(),
            request.script.to_owned(),
            // `$0` of the script: the step, for its summary.
            request.key.to_owned(),
        ],
        args: request.args,
        env,
        resources: &settings.resources,
        security_context: ContainerSecurityContext::RESTRICTED,
        termination_message_path: TERMINATION_LOG,
        termination_message_policy: "FallbackToLogsOnError",
        volume_mounts: vec![
            VolumeMount {
                name: "work",
                mount_path: "/tmp",
                read_only: false,
            },
            VolumeMount {
                name: "source",
                mount_path: request.source_path,
                read_only: true,
            },
        ],
    };
    JobSpec {
        backoff_limit: 0,
        active_deadline_seconds: request.deadline_seconds,
        ttl_seconds_after_finished: settings.ttl_seconds_after_finished,
        pod_replacement_policy: "Failed",
        pod_failure_policy: PodFailurePolicy {
            rules: (
                IgnoreRule {
                    action: "Ignore",
                    on_pod_conditions: [PodCondition {
                        type_: "DisruptionTarget",
                        status: "True",
                    }],
                },
                FailRule {
                    action: "FailJob",
                    on_exit_codes: ExitCodes {
                        operator: "NotIn",
                        values: [0],
                    },
                },
            ),
        },
        template: PodTemplate {
            metadata: PodMetadata { labels },
            spec: PodSpec {
                restart_policy: "Never",
                service_account_name: settings.service_account_name.as_deref(),
                automount_service_account_token: false,
                termination_grace_period_seconds: 30,
                image_pull_secrets: settings
                    .image_pull_secrets
                    .iter()
                    .map(|name| NameRef { name })
                    .collect(),
                security_context: PodSecurityContext {
                    run_as_non_root: true,
                    run_as_user: settings.run_as_user,
                    run_as_group: settings.run_as_user,
                    seccomp_profile: SeccompProfile::RUNTIME_DEFAULT,
                },
                init_containers,
                containers: [tool],
                volumes: [
                    Volume {
                        name: "work",
                        empty_dir: Some(EmptyDir {
                            size_limit: Some(WORK_SIZE_LIMIT),
                        }),
                        config_map: None,
                    },
                    source_volume,
                ],
            },
        },
    }
}

#[derive(Clone, Copy, Serialize)]
struct Labels<'a> {
    #[serde(rename = "app.kubernetes.io/name")]
    name: &'static str,
    #[serde(rename = "app.kubernetes.io/component")]
    component: &'static str,
    #[serde(rename = "portfolio.dev/migration")]
    migration: &'a str,
    #[serde(rename = "portfolio.dev/step")]
    step: &'static str,
    #[serde(rename = "portfolio.dev/phase")]
    phase: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Job<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: JobSpec<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    labels: Labels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobSpec<'a> {
    backoff_limit: i32,
    active_deadline_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl_seconds_after_finished: Option<i32>,
    pod_replacement_policy: &'static str,
    pod_failure_policy: PodFailurePolicy,
    template: PodTemplate<'a>,
}

#[derive(Serialize)]
struct PodFailurePolicy {
    rules: (IgnoreRule, FailRule),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IgnoreRule {
    action: &'static str,
    on_pod_conditions: [PodCondition; 1],
}

#[derive(Serialize)]
struct PodCondition {
    #[serde(rename = "type")]
    type_: &'static str,
    status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FailRule {
    action: &'static str,
    on_exit_codes: ExitCodes,
}

#[derive(Serialize)]
struct ExitCodes {
    operator: &'static str,
    values: [i32; 1],
}

#[derive(Serialize)]
struct PodTemplate<'a> {
    metadata: PodMetadata<'a>,
    spec: PodSpec<'a>,
}

#[derive(Serialize)]
struct PodMetadata<'a> {
    labels: Labels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec<'a> {
    restart_policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_account_name: Option<&'a str>,
    automount_service_account_token: bool,
    termination_grace_period_seconds: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    image_pull_secrets: Vec<NameRef<'a>>,
    security_context: PodSecurityContext,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    init_containers: Vec<Container<'a>>,
    containers: [Container<'a>; 1],
    volumes: [Volume<'a>; 2],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodSecurityContext {
    run_as_non_root: bool,
    run_as_user: i64,
    run_as_group: i64,
    seccomp_profile: SeccompProfile,
}

#[derive(Clone, Copy, Serialize)]
struct SeccompProfile {
    #[serde(rename = "type")]
    type_: &'static str,
}

impl SeccompProfile {
    const RUNTIME_DEFAULT: SeccompProfile = SeccompProfile {
        type_: "RuntimeDefault",
    };
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Container<'a> {
    name: &'a str,
    image: &'a str,
    image_pull_policy: &'static str,
    command: Vec<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    args: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<EnvVar<'a>>,
    resources: &'a Resources,
    security_context: ContainerSecurityContext,
    termination_message_path: &'static str,
    termination_message_policy: &'static str,
    volume_mounts: Vec<VolumeMount<'a>>,
}

#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerSecurityContext {
    allow_privilege_escalation: bool,
    capabilities: Capabilities,
    privileged: bool,
    read_only_root_filesystem: bool,
    run_as_non_root: bool,
    seccomp_profile: SeccompProfile,
}

impl ContainerSecurityContext {
    /// What the `restricted` Pod Security Standard asks for, and a read-only root.
    const RESTRICTED: ContainerSecurityContext = ContainerSecurityContext {
        allow_privilege_escalation: false,
        capabilities: Capabilities { drop: ["ALL"] },
        privileged: false,
        read_only_root_filesystem: true,
        run_as_non_root: true,
        seccomp_profile: SeccompProfile::RUNTIME_DEFAULT,
    };
}

#[derive(Clone, Copy, Serialize)]
struct Capabilities {
    drop: [&'static str; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvVar<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_from: Option<EnvSource<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvSource<'a> {
    secret_key_ref: SecretKeyRef<'a>,
}

#[derive(Serialize)]
struct SecretKeyRef<'a> {
    name: &'a str,
    key: &'a str,
}

#[derive(Serialize)]
struct NameRef<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Volume<'a> {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    empty_dir: Option<EmptyDir>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config_map: Option<NameRef<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EmptyDir {
    #[serde(skip_serializing_if = "Option::is_none")]
    size_limit: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VolumeMount<'a> {
    name: &'static str,
    mount_path: &'a str,
    #[serde(skip_serializing_if = "core::ops::Not::not")]
    read_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::default_resources;
    use serde_json::Value;

    fn settings() -> JobSettings {
        JobSettings {
            image: "flyway/flyway:1".into(),
            resources: default_resources(),
            ttl_seconds_after_finished: None,
            service_account_name: None,
            run_as_user: 10001,
            image_pull_secrets: Vec::new(),
            image_pull_policy: Default::default(),
        }
    }

    fn request<'a>(
        settings: &'a JobSettings,
        source: Source<'a>,
        args: &'a [String],
        env: &'a [Env<'a>],
    ) -> JobRequest<'a> {
        JobRequest {
            tool: "flyway",
            migration: "shop",
            uid: "1234",
            key: "migrate",
            phase: Phase::Expand,
            settings,
            deadline_seconds: 900,
            source,
            source_path: "/migrations",
            script: "exec \"$@\"",
            args,
            env,
        }
    }

    #[test]
    fn a_job_has_the_whole_skeleton() {
        let settings = settings();
        let args = vec!["flyway".to_owned(), "migrate".to_owned()];
        let env = [Env {
            name: "FLYWAY_PASSWORD",
            value: EnvValue::Secret {
                name: "db",
                key: "password",
            },
        }];
        let built = build(&request(&settings, Source::ConfigMap("sql"), &args, &env)).unwrap();
        let job: Value = serde_json::from_str(&built.json).unwrap();
        assert_eq!(job["metadata"]["name"], built.name.as_str());
        assert_eq!(job["metadata"]["labels"]["portfolio.dev/step"], "migrate");
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["portfolio.dev/migration"],
            "shop"
        );
        assert_eq!(job["spec"]["backoffLimit"], 0);
        assert_eq!(job["spec"]["activeDeadlineSeconds"], 900);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let container = &pod["containers"][0];
        assert_eq!(container["command"][3], "migrate");
        assert_eq!(
            container["terminationMessagePolicy"],
            "FallbackToLogsOnError"
        );
        assert_eq!(
            container["securityContext"]["capabilities"]["drop"][0],
            "ALL"
        );
        let password = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|var| var["name"] == "FLYWAY_PASSWORD")
            .unwrap();
        assert_eq!(password["valueFrom"]["secretKeyRef"]["key"], "password");
        assert!(password.get("value").is_none());
        assert_eq!(pod["volumes"][1]["configMap"]["name"], "sql");
        assert_eq!(container["volumeMounts"][1]["mountPath"], "/migrations");
        assert_eq!(container["volumeMounts"][1]["readOnly"], true);
        assert!(pod.get("initContainers").is_none());
        assert!(job["spec"].get("ttlSecondsAfterFinished").is_none());
    }

    #[test]
    fn an_image_source_is_copied_by_an_init_container() {
        let settings = settings();
        let built = build(&request(&settings, Source::Image("team/sql:7"), &[], &[])).unwrap();
        let job: Value = serde_json::from_str(&built.json).unwrap();
        let pod = &job["spec"]["template"]["spec"];
        let init = &pod["initContainers"][0];
        assert_eq!(init["image"], "team/sql:7");
        assert_eq!(
            init["command"],
            serde_json::json!(["cp", "-R", "/migrations/.", "/portfolio/source/"])
        );
        assert_eq!(init["securityContext"]["runAsNonRoot"], true);
        assert!(pod["volumes"][1]["emptyDir"].is_object());
    }

    #[test]
    fn the_name_follows_the_content() {
        let settings = settings();
        let a = build(&request(&settings, Source::ConfigMap("sql"), &[], &[])).unwrap();
        let b = build(&request(&settings, Source::ConfigMap("sql"), &[], &[])).unwrap();
        assert_eq!(a, b);
        let c = build(&request(&settings, Source::ConfigMap("sql2"), &[], &[])).unwrap();
        assert_ne!(a.name, c.name);
    }
}
