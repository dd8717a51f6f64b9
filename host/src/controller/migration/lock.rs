//! One migration at a time per database: a `coordination.k8s.io/v1` Lease per
//! database, in the operator's namespace, held by the migration that runs.
//!
//! The Lease is the lock's only record, so it holds across operator replicas
//! and restarts: taking it is a create, or an update conditioned on the
//! resourceVersion read, and only one of two racing writers wins. A holder
//! lets go when its run ends (succeeded, failed, waiting for approval, or
//! deleted). Nobody takes a lock from a holder that still exists: a
//! migration's Job may run for a long time, and only its own reconcile knows
//! when it is over. A holder that no longer exists (its uid is gone) is no
//! holder.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};
use portfolio_api::DatabaseMigration;
use sha2::{Digest, Sha256};

use crate::decorate::{FIELD_MANAGER, LABEL_MANAGED_BY};

/// Label on every database lock Lease.
pub const LOCK_LABEL: &str = "portfolio.dev/database-lock";
/// Annotation naming the database (its JDBC URL without credentials).
pub const DATABASE_ANNOTATION: &str = "portfolio.dev/database";

/// A database, as far as locking goes: its JDBC URL without credentials or
/// options, and the Lease named after it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Database {
    /// `jdbc:postgresql://db.shop.svc:5432/shop`: what tells two databases apart.
    pub url: String,
    /// Name of its Lease.
    pub lease: String,
}

impl Database {
    /// The database a JDBC URL points at. Credentials (`user:password@`,
    /// `user=`/`password=` options) and connection options are left out:
    /// two migrations that connect differently to the same database must
    /// still take turns. Known default ports are made explicit for the same
    /// reason.
    pub fn of(jdbc_url: &str) -> Self {
        let url = canonical(jdbc_url.trim());
        let digest = Sha256::digest(url.as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Database {
            lease: format!("portfolio-db-{hex}"),
            url,
        }
    }
}

fn default_port(subprotocol: &str) -> Option<&'static str> {
    match subprotocol {
        "postgresql" | "postgres" => Some("5432"),
        "mysql" | "mariadb" => Some("3306"),
        "sqlserver" => Some("1433"),
        _ => None,
    }
}

fn canonical(url: &str) -> String {
    let Some(rest) = url.strip_prefix("jdbc:") else {
        return url.to_owned();
    };
    let Some((subprotocol, rest)) = rest.split_once("://") else {
        // Not a URL with an authority (e.g. `jdbc:oracle:thin:@host:1521/x`):
        // only its options are dropped.
        return format!("jdbc:{}", rest.split(['?', ';']).next().unwrap_or(rest));
    };
    let subprotocol = subprotocol.to_ascii_lowercase();
    // `;databaseName=x` (SQL Server) names the database: it is kept.
    let mut parts = rest.split(';');
    let main = parts.next().unwrap_or_default();
    let database = parts
        .filter_map(|option| option.split_once('='))
        .find(|(key, _)| {
            key.eq_ignore_ascii_case("databaseName") || key.eq_ignore_ascii_case("database")
        })
        .map(|(_, value)| value.to_owned());
    let main = main.split('?').next().unwrap_or_default();
    let (authority, path) = match main.find('/') {
        Some(slash) => (&main[..slash], &main[slash..]),
        None => (main, ""),
    };
    // Credentials: everything before the last `@` of the authority.
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let mut hosts: Vec<String> = host_port
        .split(',')
        .map(|host| {
            let host = host.to_ascii_lowercase();
            let has_port = if host.starts_with('[') {
                host.contains("]:")
            } else {
                host.contains(':')
            };
            match default_port(&subprotocol) {
                Some(port) if !has_port && !host.is_empty() => format!("{host}:{port}"),
                _ => host,
            }
        })
        .collect();
    hosts.sort();
    let mut canonical = format!("jdbc:{subprotocol}://{}{}", hosts.join(","), path);
    if let Some(database) = database {
        canonical.push_str(";databaseName=");
        canonical.push_str(&database);
    }
    canonical
}

/// Who holds a lock: a migration, by namespace, name and uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Namespace of the migration.
    pub namespace: String,
    /// Name of the migration.
    pub name: String,
    /// Its uid: a migration deleted and created again is another holder.
    pub uid: String,
}

impl Holder {
    /// The holder that is `migration`.
    pub fn of(migration: &DatabaseMigration) -> Self {
        Holder {
            namespace: migration.metadata.namespace.clone().unwrap_or_default(),
            name: migration.metadata.name.clone().unwrap_or_default(),
            uid: migration.metadata.uid.clone().unwrap_or_default(),
        }
    }

    /// As written in the Lease's `holderIdentity`: `namespace/name/uid`.
    pub fn identity(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.name, self.uid)
    }

    fn parse(identity: &str) -> Option<Self> {
        let mut parts = identity.splitn(3, '/');
        Some(Holder {
            namespace: parts.next()?.to_owned(),
            name: parts.next()?.to_owned(),
            uid: parts.next()?.to_owned(),
        })
    }

    /// `DatabaseMigration namespace/name`, for people.
    pub fn describe(&self) -> String {
        format!("DatabaseMigration {}/{}", self.namespace, self.name)
    }
}

/// What trying to take a lock came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Taken {
    /// The lock is ours (now, or already).
    Ours,
    /// Another migration that still exists holds it.
    HeldBy(Holder),
}

/// A lock operation failed at the API server.
#[derive(Debug, thiserror::Error)]
#[error("{what} the database lock Lease {namespace}/{lease}: {}", crate::failure::describe_api_error(.source))]
pub struct LockError {
    /// `taking` or `releasing`.
    what: &'static str,
    /// The Lease's namespace.
    namespace: String,
    /// The Lease's name.
    lease: String,
    /// What the API server said.
    #[source]
    source: kube::Error,
}

/// The database locks, in one namespace.
#[derive(Clone)]
pub struct Locks {
    client: kube::Client,
    namespace: String,
}

/// Writers racing for one Lease retry this often before giving up for now.
const RACES: usize = 4;

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Locks {
    /// Locks kept as Leases in `namespace`.
    pub fn new(client: kube::Client, namespace: String) -> Self {
        Locks { client, namespace }
    }

    /// The namespace of the Leases.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn error(&self, what: &'static str, database: &Database, source: kube::Error) -> LockError {
        LockError {
            what,
            namespace: self.namespace.clone(),
            lease: database.lease.clone(),
            source,
        }
    }

    /// Take the lock of `database` for `me`, unless a migration that still
    /// exists holds it.
    pub async fn take(&self, database: &Database, me: &Holder) -> Result<Taken, LockError> {
        let leases = self.leases();
        let fail = |source| self.error("taking", database, source);
        for _ in 0..RACES {
            let Some(mut lease) = leases.get_opt(&database.lease).await.map_err(fail)? else {
                let lease = self.fresh(database, me);
                match leases.create(&PostParams::default(), &lease).await {
                    Ok(_) => return Ok(Taken::Ours),
                    // Someone else created it first: look again.
                    Err(kube::Error::Api(status)) if status.code == 409 => continue,
                    Err(error) => return Err(fail(error)),
                }
            };
            let holder = lease
                .spec
                .as_ref()
                .and_then(|spec| spec.holder_identity.as_deref())
                .filter(|identity| !identity.is_empty())
                .map(|identity| (identity.to_owned(), Holder::parse(identity)));
            match holder {
                Some((identity, _)) if identity == me.identity() => return Ok(Taken::Ours),
                Some((_, Some(holder))) if self.exists(&holder).await.map_err(fail)? => {
                    return Ok(Taken::HeldBy(holder));
                }
                // Free, held by a migration that is gone, or by something unreadable.
                _ => {}
            }
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = Some(me.identity());
            spec.acquire_time = Some(now());
            spec.renew_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            // The resourceVersion read makes this a compare-and-swap.
            match leases
                .replace(&database.lease, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => return Ok(Taken::Ours),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => return Err(fail(error)),
            }
        }
        // Lost every race: someone else is busy with it; the caller waits.
        Ok(Taken::HeldBy(Holder {
            namespace: String::new(),
            name: "(another writer)".into(),
            uid: String::new(),
        }))
    }

    /// Let go of the lock of `database` if `me` holds it. The Lease is
    /// deleted (with a precondition on what was read), so none is left
    /// behind per database ever migrated.
    pub async fn release(&self, database: &Database, me: &Holder) -> Result<bool, LockError> {
        let leases = self.leases();
        let fail = |source| self.error("releasing", database, source);
        for _ in 0..RACES {
            let Some(lease) = leases.get_opt(&database.lease).await.map_err(fail)? else {
                return Ok(false);
            };
            let ours = lease
                .spec
                .as_ref()
                .and_then(|spec| spec.holder_identity.as_deref())
                == Some(me.identity().as_str());
            if !ours {
                return Ok(false);
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: lease.metadata.uid.clone(),
                    resource_version: lease.metadata.resource_version.clone(),
                }),
                ..DeleteParams::default()
            };
            match leases.delete(&database.lease, &params).await {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => return Err(fail(error)),
            }
        }
        Ok(false)
    }

    /// Whether the migration `holder` names still exists (same uid).
    async fn exists(&self, holder: &Holder) -> Result<bool, kube::Error> {
        let api: Api<kube::core::PartialObjectMeta<DatabaseMigration>> =
            Api::namespaced(self.client.clone(), &holder.namespace);
        Ok(api
            .get_metadata_opt(&holder.name)
            .await?
            .is_some_and(|found| found.metadata.uid.as_deref() == Some(holder.uid.as_str())))
    }

    fn fresh(&self, database: &Database, me: &Holder) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(database.lease.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(
                    [
                        (LABEL_MANAGED_BY.to_owned(), FIELD_MANAGER.to_owned()),
                        (LOCK_LABEL.to_owned(), "true".to_owned()),
                    ]
                    .into(),
                ),
                annotations: Some([(DATABASE_ANNOTATION.to_owned(), database.url.clone())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(me.identity()),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_options_do_not_make_another_database() {
        let a = Database::of("jdbc:postgresql://db.shop.svc:5432/shop");
        for same in [
            "jdbc:postgresql://db.shop.svc/shop",
            "jdbc:postgresql://alice:secret@DB.shop.svc:5432/shop",
            "jdbc:postgresql://db.shop.svc:5432/shop?user=bob&password=x&sslmode=require",
            " jdbc:postgresql://db.shop.svc:5432/shop ",
        ] {
            assert_eq!(Database::of(same), a, "{same}");
        }
        assert_eq!(a.url, "jdbc:postgresql://db.shop.svc:5432/shop");
        assert!(
            !Database::of("jdbc:postgresql://alice:secret@db/x")
                .url
                .contains("secret")
        );
        for other in [
            "jdbc:postgresql://db.shop.svc:5433/shop",
            "jdbc:postgresql://db.shop.svc:5432/orders",
            "jdbc:mysql://db.shop.svc:5432/shop",
            "jdbc:postgresql://db2.shop.svc:5432/shop",
        ] {
            assert_ne!(Database::of(other), a, "{other}");
        }
    }

    #[test]
    fn lease_names_are_valid_and_stable() {
        let db = Database::of("jdbc:sqlserver://sql:1433;databaseName=shop;user=sa;password=x");
        assert_eq!(db.url, "jdbc:sqlserver://sql:1433;databaseName=shop");
        assert_ne!(
            db,
            Database::of("jdbc:sqlserver://sql:1433;databaseName=orders")
        );
        assert!(db.lease.starts_with("portfolio-db-"));
        assert_eq!(db.lease.len(), "portfolio-db-".len() + 16);
        assert_eq!(
            Database::of("jdbc:oracle:thin:@host:1521/svc?x=1").url,
            "jdbc:oracle:thin:@host:1521/svc"
        );
    }

    #[test]
    fn holders_round_trip_through_the_lease() {
        let holder = Holder {
            namespace: "demo".into(),
            name: "shop-expand".into(),
            uid: "1234-5678".into(),
        };
        assert_eq!(Holder::parse(&holder.identity()), Some(holder.clone()));
        assert_eq!(holder.describe(), "DatabaseMigration demo/shop-expand");
        assert_eq!(Holder::parse("no-slashes"), None);
    }
}
