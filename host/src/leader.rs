//! Leader election: of several replicas of the operator, only the holder of a
//! coordination.k8s.io Lease reconciles, so that replicas never fight.

use std::time::Duration;

use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseParams};

use crate::health::Health;

/// How a replica competes for leadership.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity, unique among the replicas (the Lease's holder).
    pub identity: String,
    /// How long a lease stays valid after its holder last renewed it.
    pub lease_seconds: u64,
    /// The holder renews this long before its lease would expire; also the
    /// clock skew between nodes the election tolerates.
    pub grace_seconds: u64,
    /// How to reach the API server. The election builds its own client from
    /// it, without the client's retries of 429/503 (which back off for far
    /// longer than a lease lasts) and with short timeouts, so that a renewal
    /// that cannot succeed fails in time.
    pub config: kube::Config,
}

/// Leader election failed or ended.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The settings cannot work.
    #[error("leader election: {0}")]
    Invalid(String),
    /// No API client can be built from the configuration.
    #[error("leader election: cannot create the API client: {0}")]
    Client(#[source] kube::Error),
    /// The Lease could not be created or read.
    #[error("leader election lease {namespace}/{name}: {source}")]
    Lease {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// What the lease manager reports.
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    /// Another replica holds the Lease now, or it could not be renewed in time.
    #[error("lost the leadership lease {namespace}/{name}: {reason}")]
    Lost {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// Another holder, or the renewal that failed.
        reason: String,
    },
}

impl LeaderElection {
    /// Check the settings; the lease manager panics on some of them.
    pub fn validate(&self) -> Result<(), LeaderError> {
        check_timing(self.lease_seconds, self.grace_seconds)?;
        if self.identity.is_empty() || self.namespace.is_empty() || self.lease_name.is_empty() {
            return Err(LeaderError::Invalid(
                "the identity, namespace and lease name must not be empty".into(),
            ));
        }
        Ok(())
    }

    /// How long a holder keeps retrying a failed renewal before it stops
    /// acting: well inside the grace, so that it has stopped before anyone
    /// else may take the lease over.
    fn renew_deadline(&self) -> Duration {
        Duration::from_millis(self.grace_seconds * 1000 / 2)
    }

    /// The longest one request to the API server may take: with the renew
    /// deadline, a failing leader stops within three quarters of the grace.
    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.grace_seconds * 1000 / 4).max(Duration::from_millis(200))
    }

    fn client(&self) -> Result<kube::Client, LeaderError> {
        let mut config = self.config.clone();
        config.default_retry = false;
        let timeout = Some(self.request_timeout());
        config.connect_timeout = timeout;
        config.read_timeout = timeout;
        config.write_timeout = timeout;
        kube::Client::try_from(config).map_err(LeaderError::Client)
    }
}

/// Check a lease duration and renewal grace, in seconds.
pub fn check_timing(lease_seconds: u64, grace_seconds: u64) -> Result<(), LeaderError> {
    if lease_seconds < 2 {
        return Err(LeaderError::Invalid(
            "the lease must last at least 2 seconds".into(),
        ));
    }
    if grace_seconds == 0 || grace_seconds >= lease_seconds {
        return Err(LeaderError::Invalid(format!(
            "the renewal grace ({grace_seconds} s) must be at least 1 s and shorter than the lease ({lease_seconds} s)"
        )));
    }
    Ok(())
}

/// This replica leads: it keeps renewing the Lease while `lost` is polled.
pub struct Leader {
    manager: LeaseManager,
    election: LeaderElection,
    /// The election's own client (short timeouts, no retries).
    client: kube::Client,
}

/// Wait until this replica holds the Lease (created when missing). Errors
/// talking to the API server are logged, reported to `health` (a standby
/// that cannot follow the Lease is not ready) and retried, because a standby
/// has nothing better to do; only unusable settings end the wait.
pub async fn acquire(election: LeaderElection, health: &Health) -> Result<Leader, LeaderError> {
    election.validate()?;
    let client = election.client()?;
    let params = LeaseParams::new(
        election.identity.clone(),
        election.lease_seconds,
        election.grace_seconds,
    );
    let mut retry = Duration::from_millis(500);
    let mut announced = false;
    // A fresh manager after every error: it recreates a Lease someone deleted.
    let manager = 'setup: loop {
        let manager = match LeaseManager::new(
            client.clone(),
            election.lease_name.clone(),
            election.namespace.clone(),
            params.clone(),
            LeaseCreateMode::AutoCreate,
        )
        .await
        {
            Ok(manager) => manager,
            Err(error) => {
                tracing::warn!(
                    namespace = %election.namespace,
                    lease = %election.lease_name,
                    error = %error,
                    "cannot set up the leadership lease; retrying"
                );
                health.standing_by(Some(format!(
                    "cannot set up the lease {}/{}: {error}",
                    election.namespace, election.lease_name
                )));
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        health.standing_by(None);
        if !announced {
            announced = true;
            tracing::info!(
                namespace = %election.namespace,
                lease = %election.lease_name,
                identity = %election.identity,
                "waiting to lead"
            );
        }
        loop {
            match manager.changed().await {
                Ok(true) => break 'setup manager,
                Ok(false) => {
                    retry = Duration::from_millis(500);
                    health.standing_by(None);
                }
                Err(error) => {
                    tracing::warn!(
                        namespace = %election.namespace,
                        lease = %election.lease_name,
                        error = %error,
                        "cannot read the leadership lease; retrying"
                    );
                    health.standing_by(Some(format!(
                        "cannot read the lease {}/{}: {error}",
                        election.namespace, election.lease_name
                    )));
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(10));
                    continue 'setup;
                }
            }
        }
    };
    tracing::info!(
        namespace = %election.namespace,
        lease = %election.lease_name,
        identity = %election.identity,
        "leading"
    );
    health.leading();
    Ok(Leader {
        manager,
        election,
        client,
    })
}

impl Leader {
    /// Keep renewing the Lease; completes only when leadership is lost:
    /// another replica holds it, or a failed renewal could not be redone
    /// within the renew deadline. Dropping this future stops renewing.
    pub async fn lost(&self) -> LeaderError {
        loop {
            let mut error = match self.manager.changed().await {
                Ok(true) => continue,
                Ok(false) => return self.lost_because("another replica holds the lease".into()),
                Err(error) => error,
            };
            // A renewal failed. The lease manager only returns on errors and
            // changes, so success shows in the Lease itself: renewed by us
            // after this moment.
            let failed_at = k8s_openapi::jiff::Timestamp::now();
            let deadline = tokio::time::Instant::now() + self.election.renew_deadline();
            loop {
                tracing::warn!(
                    namespace = %self.election.namespace,
                    lease = %self.election.lease_name,
                    error = %error,
                    "cannot renew the leadership lease; retrying"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
                match tokio::time::timeout_at(deadline, self.manager.changed()).await {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => {
                        return self.lost_because("another replica holds the lease".into());
                    }
                    Ok(Err(again)) if tokio::time::Instant::now() < deadline => {
                        error = again;
                        continue;
                    }
                    Ok(Err(again)) => {
                        return self.lost_because(format!("cannot renew it: {again}"));
                    }
                    Err(_) => {}
                }
                // No error until the deadline: renewed, or still waiting for
                // the API server. The Lease tells which.
                match self.renewed_since(failed_at).await {
                    Ok(true) => break,
                    Ok(false) => {
                        return self.lost_because(format!("cannot renew it in time: {error}"));
                    }
                    Err(reason) => return self.lost_because(reason),
                }
            }
        }
    }

    /// Whether the Lease names us and was renewed after `moment` (both
    /// times are this process's clock: the renewal time is ours).
    async fn renewed_since(&self, moment: k8s_openapi::jiff::Timestamp) -> Result<bool, String> {
        let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
            kube::Api::namespaced(self.client.clone(), &self.election.namespace);
        let lease = leases
            .get(&self.election.lease_name)
            .await
            .map_err(|error| format!("cannot read it: {error}"))?;
        let spec = lease.spec.unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.election.identity.as_str()) {
            return Err("another replica holds the lease".into());
        }
        Ok(spec.renew_time.is_some_and(|renewed| renewed.0 > moment))
    }

    /// Give the Lease up so that a standby replica can lead.
    pub async fn release(self) -> Result<(), LeaderError> {
        self.manager
            .release()
            .await
            .map_err(|source| LeaderError::Lease {
                namespace: self.election.namespace.clone(),
                name: self.election.lease_name.clone(),
                source,
            })?;
        tracing::info!(
            namespace = %self.election.namespace,
            lease = %self.election.lease_name,
            "released the leadership lease"
        );
        Ok(())
    }

    fn lost_because(&self, reason: String) -> LeaderError {
        LeaderError::Lost {
            namespace: self.election.namespace.clone(),
            name: self.election.lease_name.clone(),
            reason,
        }
    }
}

/// A replica identity: the pod's name (or host name) plus a random suffix, so
/// that a restarted pod with the same name is a new candidate.
pub fn default_identity() -> String {
    use std::hash::{BuildHasher, Hasher};
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| "portfolio-operator".into());
    // RandomState is seeded randomly per process; enough to tell two
    // processes apart without another dependency.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{base}_{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn election(lease: u64, grace: u64) -> LeaderElection {
        LeaderElection {
            namespace: "ns".into(),
            lease_name: "lease".into(),
            identity: "me".into(),
            lease_seconds: lease,
            grace_seconds: grace,
            config: kube::Config::new("https://127.0.0.1:1".parse().expect("uri")),
        }
    }

    #[test]
    fn settings_the_lease_manager_would_panic_on_are_refused() {
        assert!(election(15, 5).validate().is_ok());
        assert!(election(1, 0).validate().is_err());
        assert!(election(15, 0).validate().is_err());
        assert!(election(5, 5).validate().is_err());
        assert!(election(5, 6).validate().is_err());
        let mut empty = election(15, 5);
        empty.identity.clear();
        assert!(empty.validate().is_err());
    }

    #[test]
    fn a_holder_stops_before_its_lease_can_expire() {
        for (lease, grace) in [(15, 5), (3, 2), (60, 1)] {
            let e = election(lease, grace);
            assert!(
                e.renew_deadline() + e.request_timeout() < Duration::from_secs(e.grace_seconds),
                "lease {lease} s, grace {grace} s"
            );
        }
    }

    #[test]
    fn two_identities_differ() {
        assert_ne!(default_identity(), default_identity());
    }
}
