//! The emulator's control plane for tests: fault injection (failing, delaying or expiring
//! requests, pausing the whole server) and the behaviour of simulated workloads (job outcomes,
//! images that never become ready, autoscaler metrics, timings). Every operation is a library
//! call on [`Control`] (reached through [`crate::Emulator::control`]) and an HTTP endpoint
//! under `/emulator/v1/` on the same server (see [`handle`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cluster::Controller;
use crate::error::ApiError;
use crate::http::RequestInfo;
use crate::selector::LabelSelector;

/// The reserved path prefix of the control API.
pub const PREFIX: &str = "/emulator/v1";

/// How many injected faults the log keeps.
const LOG_CAPACITY: usize = 1000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves consistent data, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Matches `text` against a glob where `*` is any run of characters and `?` any one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn opt_matches(want: &Option<String>, got: &str) -> bool {
    want.as_deref().is_none_or(|w| glob(w, got))
}

/// Timings and behaviour of the simulated cluster that tests may change at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    /// From a pod being scheduled to its containers running and ready (Kubernetes: image
    /// pulls and container starts, seconds).
    pub pod_start_delay: Duration,
    /// How long a pod of a Job (or a bare pod that runs to completion) runs before it ends.
    pub job_duration: Duration,
    /// The first delay before a Job replaces a failed pod; it doubles per failure, capped at
    /// 36 times this (Kubernetes: 10 s, capped at 6 min).
    pub job_backoff: Duration,
    /// How often each HorizontalPodAutoscaler is reconciled (Kubernetes: 15 s).
    pub hpa_sync_period: Duration,
    /// How long an autoscaler remembers higher recommendations before scaling down
    /// (Kubernetes: 5 min).
    pub hpa_downscale_stabilization: Duration,
    /// Images whose name contains one of these never become ready: their pull fails with
    /// `ImagePullBackOff`, so Deployments using them exceed their progress deadline.
    pub never_ready_markers: Vec<String>,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            pod_start_delay: Duration::from_millis(500),
            job_duration: Duration::from_secs(1),
            job_backoff: Duration::from_secs(1),
            hpa_sync_period: Duration::from_secs(1),
            hpa_downscale_stabilization: Duration::from_secs(300),
            // `.invalid` is a reserved top-level domain: such images never pull in a real
            // cluster either, so tests using them behave the same on both.
            never_ready_markers: vec![".invalid/".to_string()],
        }
    }
}

/// [`Knobs`] as the HTTP control API shows and changes them (durations in milliseconds).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KnobsPatch {
    /// [`Knobs::pod_start_delay`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_start_delay_ms: Option<u64>,
    /// [`Knobs::job_duration`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_duration_ms: Option<u64>,
    /// [`Knobs::job_backoff`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_backoff_ms: Option<u64>,
    /// [`Knobs::hpa_sync_period`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_sync_period_ms: Option<u64>,
    /// [`Knobs::hpa_downscale_stabilization`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_downscale_stabilization_ms: Option<u64>,
    /// [`Knobs::never_ready_markers`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_ready_markers: Option<Vec<String>>,
}

impl Knobs {
    fn to_patch(&self) -> KnobsPatch {
        let ms = |d: Duration| Some(d.as_millis() as u64);
        KnobsPatch {
            pod_start_delay_ms: ms(self.pod_start_delay),
            job_duration_ms: ms(self.job_duration),
            job_backoff_ms: ms(self.job_backoff),
            hpa_sync_period_ms: ms(self.hpa_sync_period),
            hpa_downscale_stabilization_ms: ms(self.hpa_downscale_stabilization),
            never_ready_markers: Some(self.never_ready_markers.clone()),
        }
    }

    fn apply(&mut self, p: &KnobsPatch) {
        let ms = Duration::from_millis;
        if let Some(v) = p.pod_start_delay_ms {
            self.pod_start_delay = ms(v);
        }
        if let Some(v) = p.job_duration_ms {
            self.job_duration = ms(v);
        }
        if let Some(v) = p.job_backoff_ms {
            self.job_backoff = ms(v);
        }
        if let Some(v) = p.hpa_sync_period_ms {
            // A zero period would spin; Kubernetes refuses it too.
            self.hpa_sync_period = ms(v.max(1));
        }
        if let Some(v) = p.hpa_downscale_stabilization_ms {
            self.hpa_downscale_stabilization = ms(v);
        }
        if let Some(v) = &p.never_ready_markers {
            self.never_ready_markers = v.iter().filter(|m| !m.is_empty()).cloned().collect();
        }
    }
}

/// Which requests a fault applies to, and what it does to them. Unset matchers match
/// anything; `name`, `namespace` and `resource` accept `*` and `?` wildcards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    /// API group (`""` is the core group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Plural resource, e.g. `deployments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Subresource, e.g. `status` (`""` is the main resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// Namespace of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How many matching requests it affects before it expires (unset: until removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Answer with this HTTP status instead of serving the request (500, 503, 429, 409, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The message of the answered Status (a Kubernetes-like default otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Retry-After` seconds (and `details.retryAfterSeconds`) of the answer; 429 defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
    /// Wait this long before serving (or failing) the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

impl FaultRule {
    /// A rule failing every matching request with `status`.
    pub fn fail(status: u16) -> Self {
        FaultRule {
            status: Some(status),
            ..Default::default()
        }
    }

    /// A rule delaying every matching request.
    pub fn delay(d: Duration) -> Self {
        FaultRule {
            delay_ms: Some(d.as_millis() as u64),
            ..Default::default()
        }
    }

    /// Only requests with this verb.
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_string());
        self
    }

    /// Only requests for this plural resource.
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }

    /// Only requests in this namespace.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// Only requests for objects with this name (wildcards allowed).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// The `Retry-After` of the answer.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// The message of the answer.
    pub fn message(mut self, message: &str) -> Self {
        self.message = Some(message.to_string());
        self
    }

    fn matches(&self, info: &RequestInfo) -> bool {
        self.verb.as_deref().is_none_or(|v| v == info.verb)
            && self.group.as_deref().is_none_or(|g| g == info.group)
            && opt_matches(&self.resource, &info.resource)
            && self
                .subresource
                .as_deref()
                .is_none_or(|s| s == info.subresource)
            && opt_matches(&self.namespace, &info.namespace)
            && opt_matches(&self.name, &info.name)
    }

    fn check(&self) -> Result<(), ApiError> {
        if let Some(s) = self.status
            && !(400..=599).contains(&s)
        {
            return Err(ApiError::bad_request(format!(
                "status must be an HTTP error code (400-599), not {s}"
            )));
        }
        if self.status.is_none() && self.delay_ms.is_none() {
            return Err(ApiError::bad_request(
                "a fault needs a status to answer with, a delayMs, or both",
            ));
        }
        Ok(())
    }

    /// The error a failing rule answers with, shaped as Kubernetes answers that status.
    fn error(&self, info: &RequestInfo) -> Option<ApiError> {
        let code = self.status?;
        let msg = self.message.clone();
        let mut e = match code {
            409 => match msg {
                Some(m) => ApiError::conflict(&info.group, &info.resource, &info.name, &m),
                None => ApiError::stale(&info.group, &info.resource, &info.name),
            },
            429 => ApiError::new(
                429,
                "TooManyRequests",
                msg.unwrap_or_else(|| {
                    "the server has received too many requests and has asked us to try again later"
                        .into()
                }),
            ),
            503 => ApiError::new(
                503,
                "ServiceUnavailable",
                msg.unwrap_or_else(|| "the server is currently unable to handle the request".into()),
            ),
            504 => ApiError::new(
                504,
                "Timeout",
                msg.unwrap_or_else(|| {
                    "the server was unable to return a response in the time allotted, but may still be processing the request".into()
                }),
            ),
            500 => ApiError::internal(format!(
                "Internal error occurred: {}",
                msg.unwrap_or_else(|| "injected fault".into())
            )),
            404 => {
                let mut e = ApiError::not_found(&info.group, &info.resource, &info.name);
                if let Some(m) = msg {
                    e.message = m;
                }
                e
            }
            403 => ApiError::forbidden(
                &info.group,
                &info.resource,
                &info.name,
                &msg.unwrap_or_else(|| "injected fault".into()),
            ),
            401 => ApiError::unauthorized(),
            410 => ApiError::expired(msg.unwrap_or_else(|| "injected fault".into())),
            400 => ApiError::bad_request(msg.unwrap_or_else(|| "injected fault".into())),
            422 => ApiError::new(
                422,
                "Invalid",
                msg.unwrap_or_else(|| "injected fault".into()),
            ),
            other => ApiError::new(other, "", msg.unwrap_or_else(|| "injected fault".into())),
        };
        e.details.retry_after = self.retry_after_seconds.or((code == 429).then_some(1));
        Some(e)
    }
}

/// An installed fault with its identifier and how often it struck.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveFault {
    /// Identifier for removal.
    pub id: u64,
    /// The rule.
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Requests it affected so far.
    pub hits: u64,
}

/// One fault that struck a request, as logged.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRecord {
    /// When (RFC 3339).
    pub time: String,
    /// The rule's identifier (0 for watch expiry, pauses and compaction).
    pub rule: u64,
    /// What happened: `status 503`, `delay 200ms`, `watch expired`, ...
    pub effect: String,
    /// The request it hit.
    pub request: RequestInfo,
}

/// Makes the next watch requests answer `410 Gone` (an `ERROR` event with reason `Expired`, as
/// Kubernetes' watch cache sends once a resourceVersion is compacted away).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchExpiry {
    /// Only watches of this plural resource (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Only watches in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How many watches (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// How a paused server treats clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PauseMode {
    /// The port is closed: new connections are refused and open ones (watches too) drop.
    Refuse,
    /// Connections are accepted but no request is answered (watches go silent) until resumed;
    /// the control API keeps answering.
    Hang,
}

/// The result a pod of a Job (or a bare pod that runs to completion) ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Outcome {
    /// Exit code 0 (after `failedAttempts` failing attempts, if set).
    #[default]
    Succeeded,
    /// Every attempt fails.
    Failed,
}

/// Chooses how matching Jobs' pods end. The latest added rule that matches a Job wins;
/// without one, pods succeed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutcomeRule {
    /// Only Jobs (or bare pods) in this namespace (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only Jobs (or bare pods) with a matching name (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only Jobs (or bare pods) whose labels match this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Success or failure.
    #[serde(default)]
    pub outcome: Outcome,
    /// With `Succeeded`: this many attempts fail first (retries are then visible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// The container's termination message (`state.terminated.message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The exit code of failing attempts (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// How long each attempt runs (default: the `jobDuration` knob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl OutcomeRule {
    /// Every attempt of matching Jobs fails with this termination message.
    pub fn fail(message: &str) -> Self {
        OutcomeRule {
            outcome: Outcome::Failed,
            message: Some(message.to_string()),
            ..Default::default()
        }
    }

    /// Matching Jobs succeed with this termination message.
    pub fn succeed(message: &str) -> Self {
        OutcomeRule {
            outcome: Outcome::Succeeded,
            message: Some(message.to_string()),
            ..Default::default()
        }
    }

    /// Only Jobs whose name matches (wildcards allowed).
    pub fn name(mut self, pattern: &str) -> Self {
        self.name = Some(pattern.to_string());
        self
    }

    /// Only Jobs whose labels match the selector.
    pub fn labels(mut self, selector: &str) -> Self {
        self.labels = Some(selector.to_string());
        self
    }

    /// Only Jobs in this namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }

    fn check(&self) -> Result<(), ApiError> {
        if let Some(l) = &self.labels {
            LabelSelector::parse(l).map_err(|e| ApiError::bad_request(format!("labels: {e}")))?;
        }
        Ok(())
    }

    fn matches(&self, ns: &str, name: &str, obj: &Value) -> bool {
        opt_matches(&self.namespace, ns)
            && opt_matches(&self.name, name)
            && self
                .labels
                .as_deref()
                .is_none_or(|l| LabelSelector::parse(l).is_ok_and(|s| s.matches(obj)))
    }
}

/// What a workload's attempt does, resolved from the rules and knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Whether attempt number `n` (0-based) fails: `n < failing`.
    pub failing: u32,
    /// Termination message.
    pub message: Option<String>,
    /// Exit code of failing attempts.
    pub exit_code: i32,
    /// How long an attempt runs.
    pub duration: Duration,
}

/// Simulated metrics for autoscalers: the average utilization (percent of the pods' requests)
/// matching HorizontalPodAutoscalers observe. Without a rule, every metric sits at its target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricRule {
    /// Only autoscalers in this namespace (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only autoscalers with a matching name (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The observed utilization, in percent.
    pub utilization: u32,
}

#[derive(Default)]
struct Rules<T> {
    next: u64,
    items: Vec<(u64, T)>,
}

impl<T: Clone> Rules<T> {
    fn add(&mut self, t: T) -> u64 {
        self.next += 1;
        self.items.push((self.next, t));
        self.next
    }
}

struct Expiry {
    rule: WatchExpiry,
    left: u32,
}

/// The emulator's control state, shared by the HTTP server and the simulated controllers.
pub struct Control {
    /// Itself, for work scheduled after an answer (a refusing pause over HTTP).
    me: std::sync::Weak<Control>,
    faults: Mutex<Vec<ActiveFault>>,
    next_fault: AtomicU64,
    log: Mutex<VecDeque<FaultRecord>>,
    expiries: Mutex<Vec<Expiry>>,
    pause: tokio::sync::watch::Sender<Option<PauseMode>>,
    pause_generation: std::sync::Arc<AtomicU64>,
    watch_cut: tokio::sync::watch::Sender<u64>,
    knobs: RwLock<Knobs>,
    outcomes: Mutex<Rules<OutcomeRule>>,
    metrics: Mutex<Rules<MetricRule>>,
    controllers: Vec<Controller>,
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    compact: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("controllers", &self.controllers)
            .finish_non_exhaustive()
    }
}

impl Control {
    /// A control plane with these knobs and controllers; `compact` forgets the store's history.
    pub(crate) fn new(
        knobs: Knobs,
        controllers: Vec<Controller>,
        compact: Box<dyn Fn() + Send + Sync>,
    ) -> std::sync::Arc<Self> {
        std::sync::Arc::new_cyclic(|me| Control {
            me: me.clone(),
            faults: Mutex::new(Vec::new()),
            next_fault: AtomicU64::new(0),
            log: Mutex::new(VecDeque::new()),
            expiries: Mutex::new(Vec::new()),
            pause: tokio::sync::watch::channel(None).0,
            pause_generation: std::sync::Arc::new(AtomicU64::new(0)),
            watch_cut: tokio::sync::watch::channel(0).0,
            knobs: RwLock::new(knobs),
            outcomes: Mutex::new(Rules::default()),
            metrics: Mutex::new(Rules::default()),
            controllers,
            runtime: Mutex::new(None),
            compact,
        })
    }

    fn self_handle(&self) -> std::sync::Weak<Control> {
        self.me.clone()
    }

    pub(crate) fn set_runtime(&self, h: tokio::runtime::Handle) {
        *lock(&self.runtime) = Some(h);
    }

    /// The simulated controllers that run.
    pub fn controllers(&self) -> &[Controller] {
        &self.controllers
    }

    /// Whether this controller runs.
    pub fn runs(&self, c: Controller) -> bool {
        self.controllers.contains(&c)
    }

    // ---- faults ----

    /// Installs a fault; answers its identifier.
    pub fn add_fault(&self, rule: FaultRule) -> Result<u64, ApiError> {
        rule.check()?;
        let id = self.next_fault.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(id, ?rule, "fault installed");
        lock(&self.faults).push(ActiveFault { id, rule, hits: 0 });
        Ok(id)
    }

    /// Removes one fault; whether it existed.
    pub fn remove_fault(&self, id: u64) -> bool {
        let mut f = lock(&self.faults);
        let before = f.len();
        f.retain(|a| a.id != id);
        f.len() != before
    }

    /// Removes every fault and pending watch expiry.
    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
        lock(&self.expiries).clear();
    }

    /// The installed faults (expired ones are gone).
    pub fn faults(&self) -> Vec<ActiveFault> {
        lock(&self.faults).clone()
    }

    /// The most recent faults that struck requests, oldest first.
    pub fn fault_log(&self) -> Vec<FaultRecord> {
        lock(&self.log).iter().cloned().collect()
    }

    fn record(&self, rule: u64, effect: String, info: &RequestInfo) {
        tracing::info!(
            rule,
            effect = %effect,
            verb = %info.verb,
            group = %info.group,
            resource = %info.resource,
            subresource = %info.subresource,
            namespace = %info.namespace,
            name = %info.name,
            "injected fault"
        );
        let mut log = lock(&self.log);
        if log.len() >= LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(FaultRecord {
            time: crate::api::now(),
            rule,
            effect,
            request: info.clone(),
        });
    }

    /// What the installed faults do to one request: the summed delay of every matching rule
    /// and the error of the first matching failing rule. Each matching rule uses up one of its
    /// `times`.
    pub(crate) fn decide(&self, info: &RequestInfo) -> (Option<Duration>, Option<ApiError>) {
        let mut delay = Duration::ZERO;
        let mut fail = None;
        let mut struck = Vec::new();
        {
            let mut faults = lock(&self.faults);
            for f in faults.iter_mut() {
                if !f.rule.matches(info) {
                    continue;
                }
                if f.rule.status.is_some() && fail.is_some() && f.rule.delay_ms.is_none() {
                    // Only the first failing rule answers; a later one is not used up.
                    continue;
                }
                f.hits += 1;
                if let Some(ms) = f.rule.delay_ms {
                    delay += Duration::from_millis(ms);
                    struck.push((f.id, format!("delay {ms}ms")));
                }
                if fail.is_none()
                    && let Some(e) = f.rule.error(info)
                {
                    struck.push((f.id, format!("status {}", e.code)));
                    fail = Some(e);
                }
                if let Some(t) = f.rule.times.as_mut() {
                    *t = t.saturating_sub(1);
                }
            }
            faults.retain(|f| f.rule.times != Some(0));
        }
        for (id, effect) in struck {
            self.record(id, effect, info);
        }
        ((!delay.is_zero()).then_some(delay), fail)
    }

    /// Makes the next matching watches answer 410 Gone.
    pub fn expire_watches(&self, rule: WatchExpiry) {
        let left = rule.count.unwrap_or(1);
        if left > 0 {
            lock(&self.expiries).push(Expiry { rule, left });
        }
    }

    /// Whether this watch request must answer 410 Gone (uses up one expiry).
    pub(crate) fn take_watch_expiry(&self, info: &RequestInfo) -> bool {
        let mut ex = lock(&self.expiries);
        let Some(e) = ex.iter_mut().find(|e| {
            opt_matches(&e.rule.resource, &info.resource)
                && opt_matches(&e.rule.namespace, &info.namespace)
        }) else {
            return false;
        };
        e.left -= 1;
        ex.retain(|e| e.left > 0);
        drop(ex);
        self.record(0, "watch expired".into(), info);
        true
    }

    /// Ends every open watch stream (clients see the connection close and re-watch).
    pub fn cut_watches(&self) {
        tracing::info!("injected fault: cutting every open watch");
        self.watch_cut.send_modify(|v| *v += 1);
    }

    pub(crate) fn watch_cuts(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut r = self.watch_cut.subscribe();
        r.mark_unchanged();
        r
    }

    /// Forgets history: watches and lists at older resourceVersions get 410 Gone.
    pub fn compact(&self) {
        tracing::info!("injected fault: compacting history");
        (self.compact)();
    }

    /// Pauses the whole server until [`Control::resume`] (or `auto_resume` elapses).
    pub fn pause(&self, mode: PauseMode, auto_resume: Option<Duration>) {
        tracing::info!(?mode, ?auto_resume, "injected fault: pausing the server");
        let generation = self.pause_generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.pause.send_replace(Some(mode));
        let Some(d) = auto_resume else { return };
        let Some(h) = lock(&self.runtime).clone() else {
            return;
        };
        let tx = self.pause.clone();
        let current = self.pause_generation.clone();
        h.spawn(async move {
            tokio::time::sleep(d).await;
            // A later pause or resume supersedes this timer.
            if current.load(Ordering::SeqCst) == generation {
                tracing::info!("server resumed after its pause elapsed");
                tx.send_replace(None);
            }
        });
    }

    /// Ends a pause.
    pub fn resume(&self) {
        self.pause_generation.fetch_add(1, Ordering::SeqCst);
        tracing::info!("server resumed");
        self.pause.send_replace(None);
    }

    /// The current pause, if any.
    pub fn paused(&self) -> Option<PauseMode> {
        *self.pause.borrow()
    }

    pub(crate) fn pause_watch(&self) -> tokio::sync::watch::Receiver<Option<PauseMode>> {
        self.pause.subscribe()
    }

    // ---- workloads ----

    /// The current knobs.
    pub fn knobs(&self) -> Knobs {
        self.knobs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes knobs at run time.
    pub fn update_knobs(&self, f: impl FnOnce(&mut Knobs)) {
        let mut k = self.knobs.write().unwrap_or_else(|p| p.into_inner());
        f(&mut k);
    }

    /// Adds a rule for Job outcomes; answers its identifier.
    pub fn add_outcome(&self, rule: OutcomeRule) -> Result<u64, ApiError> {
        rule.check()?;
        Ok(lock(&self.outcomes).add(rule))
    }

    /// Removes every outcome rule (pods succeed again).
    pub fn clear_outcomes(&self) {
        lock(&self.outcomes).items.clear();
    }

    /// The outcome rules with their identifiers.
    pub fn outcomes(&self) -> Vec<(u64, OutcomeRule)> {
        lock(&self.outcomes).items.clone()
    }

    /// How an attempt of the workload named `name` in `ns` (with `obj`'s labels) ends.
    pub fn resolve_outcome(&self, ns: &str, name: &str, obj: &Value) -> Resolved {
        let knobs = self.knobs();
        let rules = lock(&self.outcomes);
        let rule = rules
            .items
            .iter()
            .rev()
            .map(|(_, r)| r)
            .find(|r| r.matches(ns, name, obj));
        match rule {
            None => Resolved {
                failing: 0,
                message: None,
                exit_code: 1,
                duration: knobs.job_duration,
            },
            Some(r) => Resolved {
                failing: match r.outcome {
                    Outcome::Failed => u32::MAX,
                    Outcome::Succeeded => r.failed_attempts.unwrap_or(0),
                },
                message: r.message.clone(),
                exit_code: r.exit_code.filter(|c| *c != 0).unwrap_or(1),
                duration: r
                    .duration_ms
                    .map(Duration::from_millis)
                    .unwrap_or(knobs.job_duration),
            },
        }
    }

    /// Sets the utilization matching autoscalers observe; answers the rule's identifier.
    pub fn add_metric(&self, rule: MetricRule) -> u64 {
        lock(&self.metrics).add(rule)
    }

    /// Removes every metric rule (metrics sit at their targets again).
    pub fn clear_metrics(&self) {
        lock(&self.metrics).items.clear();
    }

    /// The utilization an autoscaler observes, if a rule sets one.
    pub fn utilization_for(&self, ns: &str, name: &str) -> Option<u32> {
        lock(&self.metrics)
            .items
            .iter()
            .rev()
            .find(|(_, r)| opt_matches(&r.namespace, ns) && opt_matches(&r.name, name))
            .map(|(_, r)| r.utilization)
    }

    /// Whether pods with this image never become ready.
    pub fn never_ready(&self, image: &str) -> bool {
        self.knobs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .never_ready_markers
            .iter()
            .any(|m| image.contains(m.as_str()))
    }
}

/// The body of `POST /emulator/v1/pause`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PauseRequest {
    mode: PauseMode,
    #[serde(default)]
    duration_ms: Option<u64>,
}

fn parse<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid control request body: {e}")))
}

fn parse_required<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid control request body: {e}")))
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn cluster_view(c: &Control) -> Value {
    json!({
        "controllers": c.controllers.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "knobs": to_json(&c.knobs().to_patch()),
        "paused": c.paused(),
    })
}

/// Serves one control request (`path` without the [`PREFIX`]); answers a status code and a
/// JSON body.
pub fn handle(
    c: &Control,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_allowed = || Err(ApiError::method_not_allowed());
    match (segs.as_slice(), method) {
        ([], "GET") | (["cluster"], "GET") => Ok((200, cluster_view(c))),
        (["cluster"], "PATCH") => {
            let p: KnobsPatch = parse_required(body)?;
            c.update_knobs(|k| k.apply(&p));
            Ok((200, cluster_view(c)))
        }
        (["faults"], "GET") => Ok((200, json!({"items": to_json(&c.faults())}))),
        (["faults"], "POST") => {
            let rule: FaultRule = parse_required(body)?;
            let id = c.add_fault(rule.clone())?;
            Ok((201, to_json(&ActiveFault { id, rule, hits: 0 })))
        }
        (["faults"], "DELETE") => {
            c.clear_faults();
            Ok((200, json!({"items": []})))
        }
        (["faults", "log"], "GET") => Ok((200, json!({"items": to_json(&c.fault_log())}))),
        (["faults", id], "DELETE") => {
            let id: u64 = id
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid fault id {id:?}")))?;
            if c.remove_fault(id) {
                Ok((200, json!({"id": id})))
            } else {
                Err(ApiError::not_found("emulator", "faults", &id.to_string()))
            }
        }
        (["watches", "cut"], "POST") => {
            c.cut_watches();
            Ok((200, json!({})))
        }
        (["watches", "expire"], "POST") => {
            let rule: WatchExpiry = parse(body)?;
            c.expire_watches(rule.clone());
            Ok((200, to_json(&rule)))
        }
        (["pause"], "POST") => {
            let p: PauseRequest = parse_required(body)?;
            let resume = p.duration_ms.map(Duration::from_millis);
            match (p.mode, lock(&c.runtime).clone()) {
                // Closing the port also drops the connection this answer travels on: let the
                // answer go out first.
                (PauseMode::Refuse, Some(h)) => {
                    let c2 = c.self_handle();
                    h.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        if let Some(c) = c2.upgrade() {
                            c.pause(PauseMode::Refuse, resume);
                        }
                    });
                    let mut v = cluster_view(c);
                    v["paused"] = json!(PauseMode::Refuse);
                    Ok((200, v))
                }
                (mode, _) => {
                    c.pause(mode, resume);
                    Ok((200, cluster_view(c)))
                }
            }
        }
        (["resume"], "POST") => {
            c.resume();
            Ok((200, cluster_view(c)))
        }
        (["compact"], "POST") => {
            c.compact();
            Ok((200, json!({})))
        }
        (["outcomes"], "GET") => Ok((200, rules_json(&c.outcomes()))),
        (["outcomes"], "POST") => {
            let rule: OutcomeRule = parse_required(body)?;
            let id = c.add_outcome(rule.clone())?;
            Ok((201, with_id(id, &rule)))
        }
        (["outcomes"], "DELETE") => {
            c.clear_outcomes();
            Ok((200, json!({"items": []})))
        }
        (["metrics"], "GET") => Ok((200, rules_json(&lock(&c.metrics).items))),
        (["metrics"], "POST") => {
            let rule: MetricRule = parse_required(body)?;
            let id = c.add_metric(rule.clone());
            Ok((201, with_id(id, &rule)))
        }
        (["metrics"], "DELETE") => {
            c.clear_metrics();
            Ok((200, json!({"items": []})))
        }
        (
            []
            | ["cluster"]
            | ["faults"]
            | ["faults", ..]
            | ["watches", "cut" | "expire"]
            | ["pause"]
            | ["resume"]
            | ["compact"]
            | ["outcomes"]
            | ["metrics"],
            _,
        ) => not_allowed(),
        _ => Err(ApiError::no_route()),
    }
}

fn with_id<T: Serialize>(id: u64, rule: &T) -> Value {
    let mut v = to_json(rule);
    if let Value::Object(m) = &mut v {
        m.insert("id".into(), json!(id));
    }
    v
}

fn rules_json<T: Serialize>(items: &[(u64, T)]) -> Value {
    json!({"items": items.iter().map(|(id, r)| with_id(*id, r)).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("migrate-*", "migrate-v2"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*-db-*", "app-db-migrate"));
        assert!(!glob("web", "web2"));
    }

    fn control() -> std::sync::Arc<Control> {
        Control::new(Knobs::default(), vec![], Box::new(|| {}))
    }

    fn req(verb: &str, resource: &str, name: &str) -> RequestInfo {
        RequestInfo {
            verb: verb.into(),
            resource: resource.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn faults_strike_the_next_n_matching_requests() {
        let c = control();
        c.add_fault(FaultRule::fail(503).verb("get").resource("pods").times(2))
            .unwrap();
        assert!(c.decide(&req("list", "pods", "")).1.is_none());
        assert_eq!(
            c.decide(&req("get", "pods", "a")).1.map(|e| e.code),
            Some(503)
        );
        assert_eq!(
            c.decide(&req("get", "pods", "b")).1.map(|e| e.code),
            Some(503)
        );
        assert!(c.decide(&req("get", "pods", "c")).1.is_none());
        assert!(c.faults().is_empty());
        assert_eq!(c.fault_log().len(), 2);
    }

    #[test]
    fn too_many_requests_carry_retry_after() {
        let c = control();
        c.add_fault(FaultRule::fail(429)).unwrap();
        let e = c.decide(&req("get", "pods", "a")).1.unwrap();
        assert_eq!(
            (e.code, e.reason, e.details.retry_after),
            (429, "TooManyRequests", Some(1))
        );
        let s = e.to_status();
        assert_eq!(s["details"]["retryAfterSeconds"], 1);
    }

    #[test]
    fn delays_add_up_and_bad_rules_are_refused() {
        let c = control();
        c.add_fault(FaultRule::delay(Duration::from_millis(5)))
            .unwrap();
        c.add_fault(FaultRule::delay(Duration::from_millis(7)).resource("pods"))
            .unwrap();
        assert_eq!(
            c.decide(&req("get", "pods", "a")).0,
            Some(Duration::from_millis(12))
        );
        assert!(c.add_fault(FaultRule::default()).is_err());
        assert!(c.add_fault(FaultRule::fail(200)).is_err());
    }

    #[test]
    fn outcomes_latest_rule_wins() {
        let c = control();
        let job = json!({"metadata": {"labels": {"team": "a"}}});
        assert_eq!(c.resolve_outcome("ns", "x", &job).failing, 0);
        c.add_outcome(OutcomeRule::fail("boom").name("mig*"))
            .unwrap();
        c.add_outcome(OutcomeRule::succeed("ok").labels("team=a"))
            .unwrap();
        assert_eq!(c.resolve_outcome("ns", "migrate", &job).failing, 0);
        let other = json!({"metadata": {"labels": {"team": "b"}}});
        let r = c.resolve_outcome("ns", "migrate", &other);
        assert_eq!((r.failing, r.message.as_deref()), (u32::MAX, Some("boom")));
        assert!(
            c.add_outcome(OutcomeRule::fail("x").labels("a in ("))
                .is_err()
        );
    }

    #[test]
    fn http_control_requests() {
        let c = control();
        let (code, v) = handle(&c, "POST", "/faults", br#"{"status": 500, "times": 1}"#).unwrap();
        assert_eq!((code, v["id"].as_u64()), (201, Some(1)));
        assert_eq!(
            handle(&c, "GET", "/faults", b"").unwrap().1["items"][0]["status"],
            500
        );
        assert_eq!(handle(&c, "DELETE", "/faults/1", b"").unwrap().0, 200);
        assert_eq!(
            handle(&c, "DELETE", "/faults/1", b"").unwrap_err().code,
            404
        );
        assert_eq!(
            handle(&c, "POST", "/faults", br#"{"bogus": 1}"#)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(handle(&c, "PUT", "/faults", b"").unwrap_err().code, 405);
        assert_eq!(handle(&c, "GET", "/nothing", b"").unwrap_err().code, 404);
        let (_, v) = handle(&c, "PATCH", "/cluster", br#"{"podStartDelayMs": 5}"#).unwrap();
        assert_eq!(v["knobs"]["podStartDelayMs"], 5);
        assert_eq!(c.knobs().pod_start_delay, Duration::from_millis(5));
    }
}
