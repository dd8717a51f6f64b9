//! What `/readyz` and `/healthz` answer. The operator's parts report their
//! state here (built-in plugins loaded, CRDs served, leadership, first list of
//! the watches, controller running, reconciles in flight), through one
//! [`Health`] shared in an `Arc`; the probes read it and say, check by check,
//! what is wrong.
//!
//! Ready means: the built-in plugins are loaded, the CRDs are served, and the
//! replica either leads (or runs alone) with every watch listed, or stands by
//! and can follow the Lease. A standby is ready on purpose: rolling updates
//! and the PodDisruptionBudget count ready pods, and a standby that can take
//! over is what they should count.
//!
//! Alive means: the controller of an acting replica has not stopped, and no
//! reconcile has been in flight longer than [`STUCK_AFTER`]. A reconcile
//! waits at most 30 s for the watches and makes plugin calls of at most 60 s
//! each (the largest budget any registration may ask for); its API requests
//! have no deadline of their own (kube sets no read timeout), so a request to
//! an API server that accepted it and never answers hangs it for good. Five
//! minutes is more than twice the longest legitimate reconcile, so a
//! reconcile that old is stuck, and restarting the process is what frees it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kube::api::ListParams;
use kube::core::ApiResource;
use portfolio_api::PortfolioApp;

/// How long a reconcile may be in flight before `/healthz` calls the
/// reconcile loop stuck (see the module's documentation for why).
pub const STUCK_AFTER: Duration = Duration::from_secs(5 * 60);

/// How often the CRDs are checked: the period of a default kubelet probe.
const CRD_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Longest wait for the API server to answer the CRD check.
const CRD_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The state the probes report on.
pub struct Health {
    stuck_after: Duration,
    next_reconcile: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    builtins: Option<usize>,
    crds: Option<Result<(), String>>,
    role: Role,
    watches_listed: bool,
    controller: ControllerState,
    in_flight: BTreeMap<u64, (String, Instant)>,
}

/// This replica's part in leader election.
#[derive(Clone, Debug, Default)]
enum Role {
    /// Neither acting nor standing by yet.
    #[default]
    Starting,
    /// No leader election: acting at once, alone.
    Alone,
    /// Waiting to lead; with a problem when the Lease cannot be followed.
    Standby(Option<String>),
    /// Holding the Lease.
    Leading,
    /// Leadership ended; the process is about to stop.
    Lost(String),
}

impl Role {
    fn acts(&self) -> bool {
        matches!(self, Role::Alone | Role::Leading)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ControllerState {
    #[default]
    NotStarted,
    Running,
    Stopped,
}

/// One line of a probe's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// The state found, or what is wrong, for a person.
    pub detail: String,
}

/// A probe's answer: every check, passed or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `readyz` or `healthz`.
    pub probe: &'static str,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }

    /// The answer's body, in the form of the Kubernetes API server's verbose
    /// probes: `[+]name ok: …` or `[-]name failed: …`, then the verdict.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            let (mark, word) = if check.passed {
                ('+', "ok")
            } else {
                ('-', "failed")
            };
            let _ = writeln!(text, "[{mark}]{} {word}: {}", check.name, check.detail);
        }
        let verdict = if self.passed() { "passed" } else { "failed" };
        let _ = writeln!(text, "{} check {verdict}", self.probe);
        text
    }
}

fn check(name: &'static str, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        passed,
        detail: detail.into(),
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Nothing reported yet: not ready, alive.
    pub fn new() -> Self {
        Self::with_stuck_after(STUCK_AFTER)
    }

    /// As [`Health::new`], calling a reconcile stuck after `stuck_after`.
    pub fn with_stuck_after(stuck_after: Duration) -> Self {
        Health {
            stuck_after,
            next_reconcile: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `count` built-in plugins are loaded.
    pub fn builtins_loaded(&self, count: usize) {
        self.state().builtins = Some(count);
    }

    /// The CRD check's result: `Err` says what is wrong.
    pub fn crds_checked(&self, result: Result<(), String>) {
        self.state().crds = Some(result);
    }

    /// No leader election: this replica acts at once.
    pub fn acting_alone(&self) {
        self.state().role = Role::Alone;
    }

    /// This replica waits to lead; `problem` says why it cannot follow the
    /// Lease, if it cannot.
    pub fn standing_by(&self, problem: Option<String>) {
        self.state().role = Role::Standby(problem);
    }

    /// This replica holds the Lease.
    pub fn leading(&self) {
        self.state().role = Role::Leading;
    }

    /// This replica lost the Lease and must stop.
    pub fn leadership_lost(&self, reason: String) {
        self.state().role = Role::Lost(reason);
    }

    /// Every watch of the controller has had its first list.
    pub fn watches_listed(&self) {
        self.state().watches_listed = true;
    }

    /// The controller runs.
    pub fn controller_started(&self) {
        let mut state = self.state();
        state.controller = ControllerState::Running;
        state.watches_listed = false;
    }

    /// The controller stopped.
    pub fn controller_stopped(&self) {
        self.state().controller = ControllerState::Stopped;
    }

    /// A reconcile of `object` starts; it ends when the guard is dropped.
    pub fn reconciling(self: &Arc<Self>, object: String) -> InFlight {
        let id = self.next_reconcile.fetch_add(1, Ordering::Relaxed);
        self.state().in_flight.insert(id, (object, Instant::now()));
        InFlight {
            health: Arc::clone(self),
            id,
        }
    }

    /// `reconcile`, with each call counted in flight until it completes or
    /// is dropped.
    pub fn track<K, C, F, Fut>(
        self: &Arc<Self>,
        mut reconcile: F,
    ) -> impl FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, Fut::Output>
    where
        K: kube::Resource,
        F: FnMut(Arc<K>, Arc<C>) -> Fut,
        Fut: Future + Send + 'static,
    {
        let health = Arc::clone(self);
        move |object, context| {
            let meta = object.meta();
            let name = match &meta.namespace {
                Some(namespace) => {
                    format!("{namespace}/{}", meta.name.as_deref().unwrap_or_default())
                }
                None => meta.name.clone().unwrap_or_default(),
            };
            let in_flight = health.reconciling(name);
            let call = reconcile(object, context);
            Box::pin(async move {
                let _in_flight = in_flight;
                call.await
            })
        }
    }

    /// Keep the CRD check current until the task is aborted: list
    /// PortfolioApps in each watched namespace (or everywhere, when
    /// `namespaces` is empty), as the controller does.
    pub fn keep_checking_crds(
        self: &Arc<Self>,
        client: kube::Client,
        namespaces: Vec<String>,
    ) -> tokio::task::JoinHandle<()> {
        let health = Arc::clone(self);
        let resource = ApiResource::erase::<PortfolioApp>(&());
        // Untyped: an app that does not parse must not fail the check.
        let apis = crate::controller::scope::dynamic_apis::<kube::core::DynamicObject>(
            &client,
            &namespaces,
            &resource,
        );
        tokio::spawn(async move {
            loop {
                let listed = tokio::time::timeout(CRD_CHECK_TIMEOUT, async {
                    for (_, apps) in &apis {
                        apps.list(&ListParams::default().limit(1)).await?;
                    }
                    Ok::<_, kube::Error>(())
                })
                .await;
                health.crds_checked(match listed {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(crd_problem(&error)),
                    Err(_) => Err(format!(
                        "the API server did not answer a list of PortfolioApps within {} s",
                        CRD_CHECK_TIMEOUT.as_secs()
                    )),
                });
                tokio::time::sleep(CRD_CHECK_EVERY).await;
            }
        })
    }

    /// What `/readyz` answers.
    pub fn readiness(&self) -> Report {
        let state = self.state();
        let plugins = match state.builtins {
            Some(count) => check("plugins", true, format!("{count} built-in plugins loaded")),
            None => check("plugins", false, "the built-in plugins are not loaded yet"),
        };
        let crds = match &state.crds {
            None => check("crds", false, "not checked yet"),
            Some(Ok(())) => check("crds", true, "PortfolioApps are served"),
            Some(Err(problem)) => check("crds", false, problem.clone()),
        };
        let leadership = match &state.role {
            Role::Starting => check("leadership", false, "not started yet"),
            Role::Alone => check("leadership", true, "acting alone (no leader election)"),
            Role::Standby(None) => check(
                "leadership",
                true,
                "standing by while another replica leads",
            ),
            Role::Standby(Some(problem)) => check(
                "leadership",
                false,
                format!("standing by, but cannot follow the lease: {problem}"),
            ),
            Role::Leading => check("leadership", true, "leading"),
            Role::Lost(reason) => check("leadership", false, reason.clone()),
        };
        let watches = if state.role.acts() {
            if state.watches_listed {
                check("watches", true, "every watch has listed")
            } else {
                check(
                    "watches",
                    false,
                    "the watches of PortfolioApps and their children have not listed yet",
                )
            }
        } else if matches!(state.role, Role::Standby(_)) {
            check("watches", true, "none while standing by")
        } else {
            check("watches", false, "not watching")
        };
        Report {
            probe: "readyz",
            checks: vec![plugins, crds, leadership, watches],
        }
    }

    /// What `/healthz` answers.
    pub fn liveness(&self) -> Report {
        self.liveness_at(Instant::now())
    }

    fn liveness_at(&self, now: Instant) -> Report {
        let state = self.state();
        let controller = match (&state.role, state.controller) {
            (Role::Lost(reason), _) => check("controller", false, reason.clone()),
            (_, ControllerState::Stopped) => {
                check("controller", false, "the controller has stopped")
            }
            (_, ControllerState::Running) => check("controller", true, "running"),
            (Role::Standby(_), ControllerState::NotStarted) => {
                check("controller", true, "not running while standing by")
            }
            (_, ControllerState::NotStarted) => check("controller", true, "starting"),
        };
        let oldest = state
            .in_flight
            .values()
            .map(|(object, started)| (object, now.saturating_duration_since(*started)))
            .max_by_key(|(_, age)| *age);
        let reconciles = match oldest {
            None => check("reconciles", true, "none in flight"),
            Some((object, age)) if age > self.stuck_after => check(
                "reconciles",
                false,
                format!(
                    "the reconcile of {object} has been in flight for {} s, more than {} s: the reconcile loop is stuck",
                    age.as_secs(),
                    self.stuck_after.as_secs()
                ),
            ),
            Some((object, age)) => check(
                "reconciles",
                true,
                format!(
                    "{} in flight; the oldest, of {object}, for {} s",
                    state.in_flight.len(),
                    age.as_secs()
                ),
            ),
        };
        Report {
            probe: "healthz",
            checks: vec![controller, reconciles],
        }
    }
}

/// What a failed list of PortfolioApps means for a person.
fn crd_problem(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 404 => "PortfolioApps are not served: \
             install the CRDs (`portfolio-operator crd | kubectl apply -f -`)"
            .to_owned(),
        kube::Error::Api(status) if status.code == 403 => {
            format!("not allowed to list PortfolioApps: {}", status.message)
        }
        kube::Error::Api(status) => format!(
            "the API server refused a list of PortfolioApps ({}): {}",
            status.code, status.message
        ),
        other => format!("cannot reach the API server: {other}"),
    }
}

/// A reconcile in flight; dropping it ends it.
pub struct InFlight {
    health: Arc<Health>,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.health.state().in_flight.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(report: &Report) -> Vec<&'static str> {
        report
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn ready_only_when_every_part_has_reported() {
        let health = Health::new();
        assert_eq!(
            failed(&health.readiness()),
            ["plugins", "crds", "leadership", "watches"]
        );
        health.builtins_loaded(3);
        health.crds_checked(Ok(()));
        health.acting_alone();
        health.controller_started();
        assert_eq!(failed(&health.readiness()), ["watches"]);
        health.watches_listed();
        assert!(health.readiness().passed());
        health.crds_checked(Err("PortfolioApps are not served".into()));
        let text = health.readiness().to_text();
        assert!(
            text.contains("[-]crds failed: PortfolioApps are not served\n"),
            "{text}"
        );
        assert!(
            text.contains("[+]plugins ok: 3 built-in plugins loaded\n"),
            "{text}"
        );
        assert!(text.ends_with("readyz check failed\n"), "{text}");
    }

    #[test]
    fn a_healthy_standby_is_ready_and_one_that_cannot_follow_the_lease_is_not() {
        let health = Health::new();
        health.builtins_loaded(3);
        health.crds_checked(Ok(()));
        health.standing_by(None);
        assert!(
            health.readiness().passed(),
            "{}",
            health.readiness().to_text()
        );
        assert!(health.liveness().passed());
        health.standing_by(Some("cannot read the lease: 503".into()));
        assert_eq!(failed(&health.readiness()), ["leadership"]);
        health.leading();
        health.controller_started();
        assert_eq!(
            failed(&health.readiness()),
            ["watches"],
            "a new leader lists first"
        );
    }

    #[test]
    fn a_stopped_controller_or_a_lost_lease_is_not_alive() {
        let health = Health::new();
        health.leading();
        health.controller_started();
        assert!(health.liveness().passed());
        health.controller_stopped();
        assert_eq!(failed(&health.liveness()), ["controller"]);
        health.leadership_lost("another replica holds the lease".into());
        let text = health.liveness().to_text();
        assert!(
            text.contains("[-]controller failed: another replica holds the lease"),
            "{text}"
        );
    }

    #[test]
    fn a_reconcile_in_flight_too_long_is_stuck_until_it_ends() {
        let health = Arc::new(Health::new());
        health.acting_alone();
        health.controller_started();
        let quick = health.reconciling("demo/quick".into());
        let slow = health.reconciling("demo/slow".into());
        let soon = Instant::now() + Duration::from_secs(1);
        assert!(health.liveness_at(soon).passed());
        let later = Instant::now() + STUCK_AFTER + Duration::from_secs(1);
        drop(quick);
        let report = health.liveness_at(later);
        assert_eq!(failed(&report), ["reconciles"]);
        assert!(
            report
                .to_text()
                .contains("the reconcile of demo/slow has been in flight"),
            "{}",
            report.to_text()
        );
        drop(slow);
        assert!(health.liveness_at(later).passed());
    }

    #[tokio::test]
    async fn tracked_reconciles_are_in_flight_until_they_complete() {
        let health = Arc::new(Health::new());
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(Mutex::new(Some(released)));
        let mut reconcile = health.track(move |_app: Arc<PortfolioApp>, _: Arc<()>| {
            let released = released.lock().unwrap().take();
            async move {
                if let Some(released) = released {
                    let _ = released.await;
                }
            }
        });
        let mut app = PortfolioApp::new("shop", Default::default());
        app.metadata.namespace = Some("demo".into());
        let call = tokio::spawn(reconcile(Arc::new(app), Arc::new(())));
        let in_flight = || {
            health
                .state()
                .in_flight
                .values()
                .map(|(o, _)| o.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(in_flight(), ["demo/shop"]);
        release.send(()).unwrap();
        call.await.unwrap();
        assert!(in_flight().is_empty());
    }
}
