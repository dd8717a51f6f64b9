//! Request faults: rules that fail or delay matching requests, for a number of times or
//! until removed, and the log of the faults that struck.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::patterns::opt_matches;
use super::{Control, LOG_CAPACITY, lock};
use crate::error::ApiError;
use crate::http::RequestInfo;

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

impl Control {
    /// Installs a fault; answers its identifier.
    pub fn add_fault(&self, rule: FaultRule) -> Result<u64, ApiError> {
        rule.check()?;
        let id = self.next_fault.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(target: "emulator::control", id, ?rule, "fault installed");
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

    /// Logs a fault that struck a request.
    pub(super) fn record(&self, rule: u64, effect: String, info: &RequestInfo) {
        // The control plane's target, as the README documents it.
        tracing::info!(
            target: "emulator::control",
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Knobs;

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
}
