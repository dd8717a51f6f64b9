//! Why a reconcile failed: one reason enum (a condition reason, a metric
//! label, and whether only a change can fix it) and one error type.

use std::fmt;

/// The step that failed; each is a `Degraded` reason a person can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The plugin reference matches no active plugin.
    PluginNotFound,
    /// The plugin failed (trap, deadline, malformed output, its own error).
    PluginFailed,
    /// The spec is wrong (the plugin says so, or the reference cannot be parsed).
    InvalidSpec,
    /// The plugin returned something the operator does not allow.
    PolicyViolation,
    /// The API server refused an object.
    ApplyFailed,
    /// An object the operator would create already exists and belongs to someone else.
    Conflict,
    /// The Deployment did not roll out in time.
    RolloutFailed,
    /// Deleting the resource could not finish.
    CleanupFailed,
    /// A read or a bookkeeping write (status, finalizer) failed at the API server.
    ApiError,
    /// A new pod template waits for expand migrations to succeed (not a
    /// failure: the rollout is held, the old template keeps serving).
    MigrationsPending,
    /// An expand migration failed, so a new pod template stays held.
    MigrationFailed,
}

impl Failure {
    /// The condition reason, also the metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::PluginNotFound => "PluginNotFound",
            Failure::PluginFailed => "PluginFailed",
            Failure::InvalidSpec => "InvalidSpec",
            Failure::PolicyViolation => "PolicyViolation",
            Failure::ApplyFailed => "ApplyFailed",
            Failure::Conflict => "Conflict",
            Failure::RolloutFailed => "RolloutFailed",
            Failure::CleanupFailed => "CleanupFailed",
            Failure::ApiError => "ApiError",
            Failure::MigrationsPending => "MigrationsPending",
            Failure::MigrationFailed => "MigrationFailed",
        }
    }

    /// Whether only a change of the resource or of the plugins (not time)
    /// can fix it: then the reconcile waits for one instead of retrying.
    /// A conflict is retried: the other object's deletion is no event the
    /// operator watches.
    pub fn waits_for_change(self) -> bool {
        matches!(
            self,
            Failure::InvalidSpec | Failure::PolicyViolation | Failure::PluginNotFound
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// A failed reconcile step: its reason and a message that says what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{failure}: {message}")]
pub struct ReconcileError {
    /// Which step failed.
    pub failure: Failure,
    /// What happened and what to do, for people.
    pub message: String,
}

impl ReconcileError {
    /// A failure of `failure` with `message`.
    pub fn new(failure: Failure, message: impl Into<String>) -> Self {
        ReconcileError {
            failure,
            message: message.into(),
        }
    }

    /// The API server failed at `what` (e.g. `writing the status of demo/shop`).
    pub fn api(failure: Failure, what: &str, error: &kube::Error) -> Self {
        ReconcileError::new(failure, format!("{what}: {}", describe_api_error(error)))
    }

    /// The metric label of this failure.
    pub fn metric_label(&self) -> &'static str {
        self.failure.reason()
    }
}

/// What the API server said, in a sentence: its message and the HTTP status,
/// never a debug dump of the response.
pub fn describe_api_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let message = status.message.trim();
            let reason = status.reason.trim();
            let code = status.code;
            match (message.is_empty(), reason.is_empty()) {
                (false, false) => format!("the API server refused it ({code} {reason}): {message}"),
                (false, true) => format!("the API server refused it ({code}): {message}"),
                (true, false) => format!("the API server refused it ({code} {reason})"),
                (true, true) => format!("the API server refused it ({code})"),
            }
        }
        kube::Error::HyperError(error) => format!("the API server could not be reached: {error}"),
        kube::Error::Service(error) => format!("the API server could not be reached: {error}"),
        kube::Error::SerdeError(error) => {
            format!("the API server's answer could not be read: {error}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "reason": reason, "message": message,
        }))
        .unwrap();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn api_errors_read_as_sentences() {
        let error = ReconcileError::api(
            Failure::ApplyFailed,
            "applying Deployment shop",
            &status(
                422,
                "Invalid",
                "Deployment.apps \"shop\" is invalid: spec.replicas: Invalid value: -1",
            ),
        );
        assert_eq!(
            error.message,
            "applying Deployment shop: the API server refused it (422 Invalid): Deployment.apps \"shop\" is invalid: spec.replicas: Invalid value: -1"
        );
        assert!(!error.message.contains("Status {"), "{error}");
        assert!(!error.message.contains("ApiError"), "{error}");
        assert_eq!(
            describe_api_error(&status(404, "", "")),
            "the API server refused it (404)"
        );
    }

    #[test]
    fn only_user_errors_wait_for_a_change() {
        for failure in [
            Failure::InvalidSpec,
            Failure::PolicyViolation,
            Failure::PluginNotFound,
        ] {
            assert!(failure.waits_for_change(), "{failure}");
        }
        for failure in [
            Failure::PluginFailed,
            Failure::ApplyFailed,
            Failure::Conflict,
            Failure::ApiError,
            Failure::CleanupFailed,
        ] {
            assert!(!failure.waits_for_change(), "{failure}");
        }
        assert_eq!(
            ReconcileError::new(Failure::Conflict, "x").metric_label(),
            "Conflict"
        );
    }
}
