//! A migration's Jobs: their names per attempt, what the host records on
//! them, how far they are, and the termination message of their pod.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::ObjectRef;

/// Label with the step key of a migration Job.
pub const STEP_LABEL: &str = "portfolio.dev/step";
/// Label with the attempt number of a migration Job (1 for the first).
pub const ATTEMPT_LABEL: &str = "portfolio.dev/attempt";
/// Annotation with the hash of the plan a Job belongs to.
pub const PLAN_HASH_ANNOTATION: &str = "portfolio.dev/plan-hash";
/// Annotation on a maintenance Job: the attempt of the step it repairs for.
pub const REPAIRS_ANNOTATION: &str = "portfolio.dev/repairs-attempt";

/// Longest Job name: the Job controller copies it into a label of its pods.
const MAX_JOB_NAME: usize = 63;

/// The name of attempt `attempt` of a step whose first attempt is `base`:
/// `base` itself, then `base-2`, `base-3`, … (the base shortened to fit).
/// A new name per attempt keeps the failed attempt's Job and pod (and its
/// message) for people to read.
pub fn attempt_name(base: &str, attempt: u32) -> String {
    if attempt <= 1 {
        return base.to_owned();
    }
    let suffix = format!("-{attempt}");
    let mut keep = base.len().min(MAX_JOB_NAME.saturating_sub(suffix.len()));
    while keep > 0 && !base.is_char_boundary(keep) {
        keep -= 1;
    }
    let prefix = base[..keep].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}{suffix}")
}

/// `spec.timeout` (`90s`, `15m`, `1h30m`) as a duration; the schema admits
/// nothing else, and an empty or unreadable value is refused.
pub fn parse_timeout(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut digits = String::new();
    let mut any = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let value: u64 = digits.parse().ok()?;
        total = total.checked_add(value.checked_mul(unit)?)?;
        digits.clear();
        any = true;
    }
    (any && digits.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

/// Where a Job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Not finished.
    Active,
    /// `Complete` or `Failed`, at this time when known.
    Finished {
        /// When it finished.
        at: Option<Timestamp>,
    },
}

/// Where `job` is, from its conditions.
pub fn state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_deref())
        .unwrap_or_default();
    match conditions
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
    {
        Some(done) => JobState::Finished {
            at: done
                .last_transition_time
                .as_ref()
                .map(|time| time.0)
                .or_else(|| {
                    job.status
                        .as_ref()
                        .and_then(|s| s.completion_time.as_ref())
                        .map(|t| t.0)
                }),
        },
        None => JobState::Active,
    }
}

/// When `job` started (its `startTime`, else its creation).
pub fn started(job: &Job) -> Option<Timestamp> {
    job.status
        .as_ref()
        .and_then(|status| status.start_time.as_ref())
        .or(job.metadata.creation_timestamp.as_ref())
        .map(|time| time.0)
}

/// The attempt number a Job carries (1 when it carries none).
pub fn attempt_of(job: &Job) -> u32 {
    job.metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(ATTEMPT_LABEL))
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
}

/// Whether a pod of the Job with uid `job_uid` may still be running:
/// the previous attempt must be gone before a tool's lock is released.
pub async fn pods_running(
    client: &kube::Client,
    namespace: &str,
    job_uid: &str,
) -> Result<bool, kube::Error> {
    let pods = job_pods(client, namespace, job_uid).await?;
    Ok(pods.iter().any(|pod| {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        !matches!(phase, Some("Succeeded" | "Failed"))
    }))
}

async fn job_pods(
    client: &kube::Client,
    namespace: &str,
    job_uid: &str,
) -> Result<Vec<Pod>, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params =
        ListParams::default().labels(&format!("batch.kubernetes.io/controller-uid={job_uid}"));
    Ok(api.list(&params).await?.items)
}

/// The termination message of the last pod of the Job with uid `job_uid`:
/// of its container `container`, or of its first one.
pub async fn termination_message(
    client: &kube::Client,
    namespace: &str,
    job_uid: &str,
    container: Option<&str>,
) -> Result<Option<String>, kube::Error> {
    let mut pods = job_pods(client, namespace, job_uid).await?;
    pods.sort_by(|a, b| {
        let at = |pod: &Pod| pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
        at(a)
            .cmp(&at(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    Ok(pods.iter().rev().find_map(|pod| message_of(pod, container)))
}

fn message_of(pod: &Pod, container: Option<&str>) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_deref()?;
    let status = match container {
        Some(name) => statuses.iter().find(|s| s.name == name),
        None => statuses.first(),
    }?;
    [status.state.as_ref(), status.last_state.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|state| state.terminated.as_ref())
        .find_map(|terminated| terminated.message.clone())
        .filter(|message| !message.is_empty())
}

/// How long a Job this process started may stay out of the Job watch's
/// cache before the migration stops waiting for it (a watch that lags this
/// long is broken, or the Job was deleted before the watch showed it).
pub const UNSEEN_PATIENCE: Duration = Duration::from_secs(30);

/// The Jobs this process started that the Job watch has not shown yet, per
/// migration uid.
///
/// A step's Job is created first and the status that names it written after,
/// but the two reach the operator through different watches, and the
/// status's (or the record of it written) can come first. A reconcile that
/// then looked at the Job cache would see no Job for the running step and
/// start another attempt beside it, or, on an error, let go of the database
/// lock while the Job runs. So a migration waits until the cache shows every
/// Job it started, as controller-runtime's and kube-controller-manager's
/// "expectations" do.
#[derive(Debug, Default)]
pub struct Unseen {
    started: Mutex<Started>,
}

/// By migration uid: the Jobs it started and when.
type Started = HashMap<String, Vec<(ObjectRef<Job>, Instant)>>;

impl Unseen {
    /// The migration with uid `migration` started `job` at `at`.
    pub fn started(&self, migration: &str, job: ObjectRef<Job>, at: Instant) {
        self.lock()
            .entry(migration.to_owned())
            .or_default()
            .push((job, at));
    }

    /// A Job the migration `migration` started that `cached` does not show
    /// yet, if there is one. Jobs it shows are forgotten, and so are Jobs
    /// unseen for longer than [`UNSEEN_PATIENCE`] (with a warning).
    pub fn waiting_for(
        &self,
        migration: &str,
        now: Instant,
        cached: impl Fn(&ObjectRef<Job>) -> bool,
    ) -> Option<ObjectRef<Job>> {
        let mut started = self.lock();
        let jobs = started.get_mut(migration)?;
        jobs.retain(|(job, at)| {
            if cached(job) {
                return false;
            }
            let patient = now.saturating_duration_since(*at) < UNSEEN_PATIENCE;
            if !patient {
                tracing::warn!(
                    job = %job.name,
                    "the Job watch has not shown a Job started {}s ago; deciding without it",
                    UNSEEN_PATIENCE.as_secs()
                );
            }
            patient
        });
        let waiting = jobs.first().map(|(job, _)| job.clone());
        if waiting.is_none() {
            started.remove(migration);
        }
        waiting
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Started> {
        self.started.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_job_is_waited_for_until_the_cache_shows_it() {
        let unseen = Unseen::default();
        let t0 = Instant::now();
        let plan = ObjectRef::<Job>::new("shop-plan").within("shop");
        let migrate = ObjectRef::<Job>::new("shop-migrate").within("shop");
        assert_eq!(
            unseen.waiting_for("m1", t0, |_| false),
            None,
            "nothing started"
        );
        unseen.started("m1", plan.clone(), t0);
        // Another migration's Jobs are not this one's business.
        assert_eq!(unseen.waiting_for("m2", t0, |_| false), None);
        assert_eq!(unseen.waiting_for("m1", t0, |_| false), Some(plan.clone()));
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            unseen.waiting_for("m1", later, |_| false),
            Some(plan.clone()),
            "still not in the cache"
        );
        unseen.started("m1", migrate.clone(), later);
        // The cache shows the first: the second is still waited for.
        assert_eq!(
            unseen.waiting_for("m1", later, |job| *job == plan),
            Some(migrate.clone())
        );
        // Once seen, a Job is forgotten: leaving the cache again (deleted,
        // cleaned up by its TTL) makes nothing wait.
        assert_eq!(unseen.waiting_for("m1", later, |job| *job == migrate), None);
        assert_eq!(unseen.waiting_for("m1", later, |_| false), None);
        assert!(unseen.lock().is_empty(), "nothing kept once all were seen");
    }

    #[test]
    fn a_job_the_cache_never_shows_is_given_up_after_the_patience() {
        let unseen = Unseen::default();
        let t0 = Instant::now();
        let job = ObjectRef::<Job>::new("shop-plan").within("shop");
        unseen.started("m1", job.clone(), t0);
        let almost = t0 + UNSEEN_PATIENCE - Duration::from_millis(1);
        assert_eq!(unseen.waiting_for("m1", almost, |_| false), Some(job));
        assert_eq!(
            unseen.waiting_for("m1", t0 + UNSEEN_PATIENCE, |_| false),
            None
        );
        assert!(unseen.lock().is_empty());
    }

    #[test]
    fn attempts_get_names_of_their_own_within_63_characters() {
        assert_eq!(
            attempt_name("shop-migrate-0a1b2c3d4e", 1),
            "shop-migrate-0a1b2c3d4e"
        );
        assert_eq!(
            attempt_name("shop-migrate-0a1b2c3d4e", 2),
            "shop-migrate-0a1b2c3d4e-2"
        );
        let long = format!("{}-migrate-0a1b2c3d4e", "a".repeat(44));
        assert_eq!(long.len(), 63);
        let second = attempt_name(&long, 2);
        assert_eq!(second.len(), 63);
        assert!(second.ends_with("-2"));
        let twelfth = attempt_name(&long, 12);
        assert!(twelfth.len() <= 63 && twelfth.ends_with("-12"), "{twelfth}");
        assert_ne!(attempt_name(&long, 1), attempt_name(&long, 2));
        // A cut that ends at a dash does not leave two dashes.
        let dashy = format!("{}-xy", "b".repeat(60));
        assert_eq!(attempt_name(&dashy, 3), format!("{}-3", "b".repeat(60)));
    }

    #[test]
    fn timeouts_read_as_the_schema_writes_them() {
        assert_eq!(parse_timeout("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_timeout("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_timeout("1h30m"), Some(Duration::from_secs(5400)));
        for bad in ["", "15", "m", "1d", "0s", "-1s", "99999999999999999999h"] {
            assert_eq!(parse_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_job_is_finished_by_its_complete_or_failed_condition() {
        let job = |conditions: serde_json::Value| -> Job {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "j", "labels": {ATTEMPT_LABEL: "3"}},
                "status": {"conditions": conditions},
            }))
            .unwrap()
        };
        assert_eq!(state(&job(serde_json::json!([]))), JobState::Active);
        assert_eq!(
            state(&job(
                serde_json::json!([{"type": "Complete", "status": "False"}])
            )),
            JobState::Active
        );
        let failed = job(serde_json::json!([{
            "type": "Failed", "status": "True",
            "lastTransitionTime": "2026-12-06T10:00:00Z",
        }]));
        assert!(matches!(state(&failed), JobState::Finished { at: Some(_) }));
        assert_eq!(attempt_of(&failed), 3);
    }

    #[test]
    fn the_message_is_the_named_containers_last_words() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [
                {"name": "sidecar", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "message": "not this"}}},
                {"name": "flyway", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 1, "message": "{\"format\":1}"}}},
            ]},
        }))
        .unwrap();
        assert_eq!(
            message_of(&pod, Some("flyway")).as_deref(),
            Some("{\"format\":1}")
        );
        assert_eq!(message_of(&pod, None).as_deref(), Some("not this"));
        assert_eq!(message_of(&pod, Some("absent")), None);
    }
}
