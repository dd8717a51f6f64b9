//! One reconcile of a live PortfolioApp: load → decide → act → report.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use portfolio_api::{
    APP_KIND, PluginStatus, PortfolioApp, PortfolioAppStatus, RawJson, ResourceRef,
};
use serde_json::Value;

use super::act::{Applied, Children, Workload};
use super::children::Observed;
use super::conditions::{self, Rollout, Verdict};
use super::decide::{Existing, OwnerRef, decide, template_changes, verdict};
use super::gates::{self, GateInfo, Hold};
use super::settled;
use super::status::{self, Target};
use super::watched::WatchedApp;
use super::{Context, Error};
use crate::builtin::DEFAULT_GENERATOR;
use crate::decorate::DesiredObject;
use crate::failure::ReconcileError;
use crate::pipeline::{PipelineError, Subject};
use crate::plugin::{GeneratedOutput, ObjectKey, Plugin, World};

/// Resync even when nothing changes, so drift of fields no watch reports is found.
const RESYNC: Duration = Duration::from_secs(10 * 60);

/// The field of the spec that names the generator.
pub const GENERATOR_FIELD: &str = "spec.generator.plugin";

/// What converging produced, whatever the verdict.
struct Outcome {
    verdict: Verdict,
    plugin: Option<Arc<Plugin>>,
    output: Option<GeneratedOutput>,
    applied: Vec<ResourceRef>,
    deployment: Option<DeploymentStatus>,
    /// What the reconcile saw and did to the children, for [`super::settled`].
    acts: Acts,
}

/// The children a reconcile saw, applied (as the API server answered) and deleted.
#[derive(Default)]
struct Acts {
    observed: Vec<Observed>,
    applied: Vec<(ObjectKey, Applied)>,
    pruned: Vec<ObjectKey>,
}

impl Outcome {
    fn failed(error: ReconcileError, plugin: Option<Arc<Plugin>>) -> Self {
        Outcome {
            verdict: Verdict::Failed {
                failure: error.failure,
                message: error.message,
            },
            plugin,
            output: None,
            applied: Vec::new(),
            deployment: None,
            acts: Acts::default(),
        }
    }
}

/// What the applies of a reconcile came to.
struct Applies {
    /// The Deployment's, as the API server answered.
    deployment: Option<Workload>,
    /// The first failure, in the plugin's order.
    failed: Option<ReconcileError>,
    /// Each object applied, as answered.
    objects: Vec<(ObjectKey, Applied)>,
}

impl Applies {
    fn with_capacity(n: usize) -> Self {
        Applies {
            deployment: None,
            failed: None,
            objects: Vec::with_capacity(n),
        }
    }

    /// Take the `results` of applying `objects`; those whose name was taken
    /// (a create-only apply that wrote nothing) are handed back.
    fn take<'a>(
        &mut self,
        ctx: &Context,
        objects: &[&'a DesiredObject],
        results: Vec<Result<Option<Applied>, ReconcileError>>,
    ) -> Vec<&'a DesiredObject> {
        let mut taken = Vec::new();
        for (object, result) in objects.iter().zip(results) {
            match result {
                Ok(Some(stored)) => {
                    ctx.metrics.applied();
                    if object.key().kind == "Deployment" {
                        self.deployment = Some(stored.workload());
                    }
                    self.objects.push((object.key().clone(), stored));
                }
                Ok(None) => taken.push(*object),
                Err(error) => {
                    self.failed.get_or_insert(error);
                }
            }
        }
        taken
    }
}

/// The migrations of an app, as the watch holds them.
struct Gates {
    /// Every migration of the app.
    migrations: Vec<GateInfo>,
    /// Whether the watch of migrations has listed them: until then an
    /// expand migration naming the app may exist unseen.
    listed: bool,
}

impl Gates {
    fn of(app: &PortfolioApp, ctx: &Context) -> Self {
        let namespace = app.namespace().unwrap_or_default();
        Gates {
            migrations: gates::migrations_of(app, &ctx.migrations.in_namespace(&namespace)),
            listed: ctx.migrations.listed(),
        }
    }

    /// Why a new pod template must wait, if it must.
    fn hold(&self) -> Option<Hold> {
        if !self.listed {
            return Some(Hold::Pending {
                message: "the new pod template waits for the first list of DatabaseMigrations: whether an expand migration gates it is not known yet".to_owned(),
            });
        }
        gates::hold(&self.migrations)
    }
}

/// Bring the children of `app` in line with its spec, and say so in status.
pub async fn apply(app: Arc<PortfolioApp>, ctx: &Context) -> Result<Action, Error> {
    let gates = Gates::of(&app, ctx);
    if let Some(left) = unchanged(&app, ctx, &gates) {
        ctx.metrics.skipped();
        return Ok(Action::requeue(left));
    }
    let outcome = match converge(&app, ctx, &gates).await {
        Ok(outcome) => outcome,
        Err((error, plugin)) => Outcome::failed(error, plugin),
    };
    let uid = app.uid().unwrap_or_default();
    let (current, status) = conclude(&app, ctx, &outcome, &gates);
    let again_in = outcome
        .output
        .as_ref()
        .and_then(|output| output.requeue_after)
        .map_or(RESYNC, |hint| hint.min(RESYNC));
    // Remembered before the status goes out: the watch events of this
    // reconcile's writes that come while it writes (its children's, then
    // its status's) are then known for its own and queue nothing.
    match (&outcome.verdict, &outcome.plugin) {
        (Verdict::Failed { .. }, _) | (_, None) => ctx.settled.forget(&uid),
        (_, Some(plugin)) => ctx.settled.record(settled::Record {
            app: &app,
            status: &status,
            plugin,
            gates: (&gates.migrations, gates.listed),
            observed: &outcome.acts.observed,
            applied: &outcome.acts.applied,
            pruned: &outcome.acts.pruned,
            again_in,
        }),
    }
    if let Err(error) = report(&app, ctx, &current, &status).await {
        ctx.settled.forget(&uid);
        return Err(error);
    }
    Ok(match &outcome.verdict {
        Verdict::Failed { failure, .. } if failure.waits_for_change() => Action::await_change(),
        Verdict::Failed { failure, message } => {
            return Err(ReconcileError::new(*failure, message.clone()));
        }
        _ => Action::requeue(again_in),
    })
}

/// If a reconcile of `app` now would get the inputs of the last one (see
/// [`settled`]), how long until a full one is due.
fn unchanged(app: &PortfolioApp, ctx: &Context, gates: &Gates) -> Option<Duration> {
    if app.spec.paused {
        return None;
    }
    let plugin = generator_of(app, ctx).ok()?;
    let uid = app.uid()?;
    let status = ctx.written.current(&uid, &cached_status(app, ctx));
    let observed = ctx.children.seen_of(
        app.metadata.namespace.as_deref().unwrap_or_default(),
        app.metadata.name.as_deref().unwrap_or_default(),
        &uid,
    );
    ctx.settled.unchanged(&settled::Probe {
        app,
        status: &status,
        plugin: &plugin,
        gates: (&gates.migrations, gates.listed),
        observed: &observed,
    })
}

/// The app's status as the watch holds it now. A reconcile's copy of the
/// app is the one that queued it; the watch may have shown a newer status
/// since (the echo of the operator's own write, most often), and that
/// write is then no longer held in [`Context::written`]: compared with the
/// older copy, the same status would be written again.
fn cached_status(app: &PortfolioApp, ctx: &Context) -> PortfolioAppStatus {
    let key = ObjectRef::<WatchedApp>::new(app.metadata.name.as_deref().unwrap_or_default())
        .within(app.metadata.namespace.as_deref().unwrap_or_default());
    let latest = ctx.apps.get(&key);
    let status = latest
        .as_deref()
        .filter(|latest| latest.metadata.uid == app.metadata.uid)
        .and_then(|latest| latest.parsed.as_ref().ok())
        .map_or(&app.status, |latest| &latest.status);
    status.clone().unwrap_or_default()
}

/// The plugin an app's spec names (the built-in generator when it names none).
pub fn reference_of(app: &PortfolioApp) -> &str {
    app.spec
        .generator
        .as_ref()
        .map_or(DEFAULT_GENERATOR, |generator| generator.plugin.as_str())
}

/// The generator of `app`, resolved.
pub fn generator_of(app: &PortfolioApp, ctx: &Context) -> Result<Arc<Plugin>, PipelineError> {
    ctx.pipeline()
        .resolve(GENERATOR_FIELD, reference_of(app), World::Generator)
}

/// A pipeline failure as a reconcile failure, counted when the plugin failed.
pub fn pipeline_failure(ctx: &Context, error: &PipelineError) -> ReconcileError {
    if let PipelineError::Plugin(plugin_error) = error {
        ctx.metrics.plugin_failure(plugin_error.reason());
    }
    ReconcileError::new(error.failure(), error.to_string())
}

type Failed = (ReconcileError, Option<Arc<Plugin>>);

async fn converge(app: &PortfolioApp, ctx: &Context, gates: &Gates) -> Result<Outcome, Failed> {
    if app.spec.paused {
        return Ok(Outcome {
            verdict: Verdict::Paused,
            plugin: None,
            output: None,
            applied: Vec::new(),
            deployment: None,
            acts: Acts::default(),
        });
    }
    let namespace = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let uid = app.uid().unwrap_or_default();

    // Load: the plugin, and the children the watches hold.
    let plugin = generator_of(app, ctx).map_err(|e| (pipeline_failure(ctx, &e), None))?;
    let with_plugin = |error: ReconcileError| (error, Some(Arc::clone(&plugin)));
    let subject = Subject::new(APP_KIND, &app.metadata, &app.spec)
        .map_err(|e| with_plugin(pipeline_failure(ctx, &e)))?;
    let observed = ctx.children.of(&namespace, &name, &uid);
    // Whether the app has cleanup to do on deletion is the plugin's
    // finalize answer unless something else settles it; asked along.
    let ask_finalize = super::cleanup::needs_finalize_answer(app, &observed);
    let mut generated = ctx
        .pipeline()
        .generate(
            &plugin,
            &subject,
            observed.iter().map(Observed::to_json).collect(),
            ask_finalize,
        )
        .await
        .map_err(|e| with_plugin(pipeline_failure(ctx, &e)))?;
    let finalize = generated.finalize.take();
    let desired = generated.desired;

    // Gate: a new pod template waits until every expand migration of the
    // app has succeeded. While it waits nothing of the new spec is applied
    // or pruned, not only the workload: the children of one spec are one
    // version of the app. The built-in generator's ConfigMap keeps its name
    // (`<app>-config`) and changes in place, and pods read it through
    // `envFrom` when they start, so an old pod that restarts (a crash, an
    // eviction, a scale-up) would run the old image with the new version's
    // config; a Service whose ports changed would send traffic to ports the
    // old pods do not have. Which children old pods depend on is the
    // plugin's business (a team's plugin may make anything), so all are
    // held; the cost is that changes made together with the template wait
    // for the migration too.
    let changes = template_changes(&desired, &observed);
    if !changes.is_empty()
        && let Some(hold) = gates.hold()
    {
        let workloads: Vec<String> = changes.iter().map(ToString::to_string).collect();
        tracing::info!(
            app = %format!("{namespace}/{name}"),
            workloads = ?workloads,
            reason = hold.failure().reason(),
            message = hold.message(),
            "rollout held"
        );
        let live = observed
            .iter()
            .find(|child| child.resource.kind == "Deployment")
            .and_then(|child| Workload::of(&child.object).status);
        return Ok(Outcome {
            verdict: Verdict::Held(hold),
            plugin: Some(plugin),
            output: Some(generated.output),
            applied: Vec::new(),
            deployment: live,
            acts: Acts {
                observed,
                ..Acts::default()
            },
        });
    }

    // Names no watch holds are applied create-only: usually nothing is
    // there yet; if something is (someone else's object, or ours before the
    // watch shows it), the apply writes nothing, and only then is it read.
    let children = Children {
        client: &ctx.client,
        namespace: &namespace,
        kinds: ctx.policy.kinds(),
    };
    let ours: BTreeSet<_> = observed.iter().map(Observed::key).collect();
    let mut unknown = BTreeSet::new();
    let mut existing = std::collections::BTreeMap::new();
    for object in &desired {
        let key = object.key();
        if ours.contains(key) {
            continue;
        }
        match ctx.children.find(&namespace, key) {
            Some(cached) => {
                existing.insert(
                    key.clone(),
                    Existing::Present(Box::new(DynamicObject::clone(&cached))),
                );
            }
            None => {
                unknown.insert(key);
            }
        }
    }

    // Decide.
    let owner = OwnerRef {
        kind: APP_KIND,
        name: &name,
        uid: &uid,
    };
    let mut decision = decide(owner, &desired, &observed, &existing, ctx.policy.kinds());

    // The finalizer goes on before anything its cleanup would handle is
    // created, and comes off once nothing needs it.
    let cleanup =
        super::cleanup::has_work(app, ctx, &plugin, &subject, &desired, &observed, finalize).await;
    if cleanup {
        super::cleanup::set_finalizer(app, true, ctx)
            .await
            .map_err(with_plugin)?;
    }

    // Act.
    for handover in &decision.handovers {
        children.hand_over(handover).await.map_err(with_plugin)?;
    }
    // The handovers are done: what is left to apply is independent, and
    // goes out at once. The first failure, in the plugin's order, is the one
    // reported; what was applied besides it stays applied, as before.
    let mut applies = Applies::with_capacity(decision.apply.len());
    let results = children
        .apply_all(&decision.apply, |key| unknown.contains(key))
        .await;
    let taken = applies.take(ctx, &decision.apply, results);
    let mut conflicts = std::mem::take(&mut decision.conflicts);
    if !taken.is_empty() && applies.failed.is_none() {
        // Taken names: what is there is read, and decided on as a cached
        // object would be (ours: applied; someone else's: a conflict).
        let found = children
            .existing(taken.iter().map(|object| object.key()))
            .await
            .map_err(with_plugin)?;
        let taken: Vec<DesiredObject> = taken.into_iter().cloned().collect();
        let second = decide(owner, &taken, &[], &found, ctx.policy.kinds());
        let results = children.apply_all(&second.apply, |_| false).await;
        applies.take(ctx, &second.apply, results);
        conflicts.extend(second.conflicts);
        existing.extend(found);
    }
    let Applies {
        mut deployment,
        failed,
        objects: applied_objects,
    } = applies;
    if let Some(error) = failed {
        return Err(with_plugin(error));
    }
    let mut pruned = Vec::with_capacity(decision.prune.len());
    for child in &decision.prune {
        children.prune(child).await.map_err(with_plugin)?;
        pruned.push(child.key());
    }
    if !cleanup {
        super::cleanup::set_finalizer(app, false, ctx)
            .await
            .map_err(with_plugin)?;
    }
    if deployment.is_none() {
        // Not applied: as the watch holds it, or as read when it does not yet.
        deployment = desired
            .iter()
            .find(|o| o.key().kind == "Deployment")
            .and_then(|o| {
                observed
                    .iter()
                    .find(|c| &c.key() == o.key())
                    .map(|c| Workload::of(&c.object))
                    .or_else(|| match existing.get(o.key()) {
                        Some(Existing::Present(live)) => Some(Workload::of(live)),
                        _ => None,
                    })
            });
    }

    let applied = desired
        .iter()
        .map(|o| o.key())
        .filter(|key| !conflicts.iter().any(|c| &c.key == *key))
        .map(|key| ResourceRef {
            api_version: key.api_version.clone(),
            kind: key.kind.clone(),
            name: key.name.clone(),
        })
        .collect();
    let has_deployment = desired.iter().any(|o| o.key().kind == "Deployment");
    let rollout = match &deployment {
        None if has_deployment => Rollout::of(None, None, None),
        None => Rollout::None,
        Some(workload) => Rollout::of(
            workload.generation,
            workload.replicas,
            workload.status.as_ref(),
        ),
    };
    let verdict = verdict(&conflicts, rollout);
    let deployment = deployment.and_then(|workload| workload.status);
    drop(decision);
    Ok(Outcome {
        verdict,
        plugin: Some(plugin),
        output: Some(generated.output),
        applied,
        deployment,
        acts: Acts {
            observed,
            applied: applied_objects,
            pruned,
        },
    })
}

/// The status a reconcile concludes, and the one it replaces (as stored,
/// or as last written when the cache has not shown that write yet).
fn conclude(
    app: &PortfolioApp,
    ctx: &Context,
    outcome: &Outcome,
    gates: &Gates,
) -> (PortfolioAppStatus, PortfolioAppStatus) {
    let uid = app.uid().unwrap_or_default();
    let current = ctx.written.current(&uid, &cached_status(app, ctx));
    let now = super::conditions::now();
    let generation = app.metadata.generation;
    let mut conditions = conditions::merge(
        &current.conditions,
        &conditions::conditions(&outcome.verdict),
        generation,
        &now,
    );
    if let Some(output) = &outcome.output {
        for own in &output.conditions {
            let since = current
                .conditions
                .iter()
                .find(|c| c.type_ == own.type_ && c.status == own.status.as_str())
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            conditions.push(Condition {
                type_: own.type_.clone(),
                status: own.status.as_str().to_owned(),
                reason: own.reason.clone(),
                message: own.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            });
        }
    }
    let plugin_status = outcome
        .output
        .as_ref()
        .filter(|output| !output.status.is_empty())
        .and_then(|output| {
            RawJson::from_text(Value::Object(output.status.clone()).to_string()).ok()
        });
    // Held counts as paused: the children are still those of an earlier spec.
    let paused_or_failed = !matches!(outcome.verdict, Verdict::Applied(_));
    let status = PortfolioAppStatus {
        observed_generation: generation,
        conditions,
        replicas: outcome.deployment.as_ref().and_then(|s| s.replicas),
        ready_replicas: outcome.deployment.as_ref().and_then(|s| s.ready_replicas),
        // Paused, or no plugin found: the children are still the last plugin's.
        plugin: outcome
            .plugin
            .as_ref()
            .map(|plugin| PluginStatus {
                id: plugin.id().to_string(),
                digest: plugin.digest().to_string(),
            })
            .or_else(|| current.plugin.clone()),
        // After a failure the children applied before stay as they were.
        resources: if paused_or_failed {
            current.resources.clone()
        } else {
            outcome.applied.clone()
        },
        migrations: gates.migrations.iter().map(GateInfo::gate_status).collect(),
        plugin_status: plugin_status.or(if paused_or_failed {
            current.plugin_status.clone()
        } else {
            None
        }),
    };
    (current, status)
}

/// Write `status` over `current` (only when it differs) and record Events
/// on transitions.
async fn report(
    app: &PortfolioApp,
    ctx: &Context,
    current: &PortfolioAppStatus,
    status: &PortfolioAppStatus,
) -> Result<(), Error> {
    let target = Target::of(app);
    if status::write(ctx, &target, current, status).await? {
        let uid = app.uid().unwrap_or_default();
        ctx.written.wrote(&uid, current.clone(), status.clone());
    }
    status::announce(ctx, &target, &current.conditions, &status.conditions).await;
    Ok(())
}
