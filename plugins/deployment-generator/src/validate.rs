//! Checks of the spec that the CRD schema cannot express (or that `render`
//! runs without the CRD): everything this generator relies on to emit valid objects.

use alloc::collections::BTreeSet;
use alloc::format;

use portfolio_api::{AppResources, PortfolioAppSpec, Probe};

use crate::Invalid;
use crate::settings::Settings;

/// Longest app name: children are named `<app>-config`, `<app>-data` and
/// `<app>-backup`, which must stay DNS-1123 labels.
const MAX_NAME: usize = 63 - "-backup".len();

/// Reject a spec this generator cannot turn into valid objects, naming the field.
pub fn app(name: &str, spec: &PortfolioAppSpec, settings: &Settings) -> Result<(), Invalid> {
    if !is_dns_label(name) || name.len() > MAX_NAME {
        return Err(Invalid::new(
            "metadata.name",
            format!(
                "{name:?} must be a DNS-1123 label of at most {MAX_NAME} characters (lower case letters, digits and '-')"
            ),
        ));
    }
    image("spec.image", &spec.image)?;
    settings.check_image("spec.image", &spec.image)?;
    in_range("spec.replicas", i64::from(spec.replicas), 0, 1000)?;
    ports(spec)?;
    env(spec)?;
    config(spec)?;
    if let Some(resources) = &spec.resources {
        self::resources("spec.resources", resources)?;
    }
    if let Some(resources) = &settings.default_resources {
        self::resources("settings.defaultResources", resources)?;
    }
    if let Some(probes) = &spec.probes {
        if !probes.default_readiness && probes.readiness.is_some() {
            return Err(Invalid::new(
                "spec.probes.defaultReadiness",
                "false turns the default readiness probe off, but spec.probes.readiness sets a probe; remove one of them",
            ));
        }
        for (which, probe) in [
            ("readiness", &probes.readiness),
            ("liveness", &probes.liveness),
            ("startup", &probes.startup),
        ] {
            if let Some(probe) = probe {
                self::probe(&format!("spec.probes.{which}"), probe, spec)?;
            }
        }
    }
    storage(spec, settings)?;
    autoscaling(spec)?;
    in_range(
        "spec.terminationGracePeriodSeconds",
        spec.termination_grace_period_seconds,
        1,
        3600,
    )?;
    in_range(
        "spec.preStopDelaySeconds",
        spec.pre_stop_delay_seconds,
        0,
        600,
    )?;
    if spec.pre_stop_delay_seconds >= spec.termination_grace_period_seconds {
        return Err(Invalid::new(
            "spec.preStopDelaySeconds",
            "must be shorter than terminationGracePeriodSeconds, or pods are killed while still waiting",
        ));
    }
    if let Some(account) = &spec.service_account
        && let Some(account_name) = &account.name
        && !is_dns_subdomain(account_name)
    {
        return Err(Invalid::new(
            "spec.serviceAccount.name",
            format!("{account_name:?} is not a valid name"),
        ));
    }
    for (index, secret) in spec.image_pull_secrets.iter().enumerate() {
        if !is_dns_subdomain(secret) {
            return Err(Invalid::new(
                format!("spec.imagePullSecrets[{index}]"),
                format!("{secret:?} is not a valid Secret name"),
            ));
        }
    }
    if let Some(scheduling) = &spec.scheduling {
        for (key, value) in &scheduling.node_selector {
            if !is_label_key(key) || !is_label_value(value) {
                return Err(Invalid::new(
                    format!("spec.scheduling.nodeSelector.{key}"),
                    "is not a valid label key and value",
                ));
            }
        }
        for (field, items) in [
            ("tolerations", &scheduling.tolerations),
            (
                "topologySpreadConstraints",
                &scheduling.topology_spread_constraints,
            ),
        ] {
            for (index, item) in items.iter().enumerate() {
                if !item.get().trim_start().starts_with('{') {
                    return Err(Invalid::new(
                        format!("spec.scheduling.{field}[{index}]"),
                        "must be an object",
                    ));
                }
            }
        }
        if let Some(affinity) = &scheduling.affinity
            && !affinity.get().trim_start().starts_with('{')
        {
            return Err(Invalid::new(
                "spec.scheduling.affinity",
                "must be an object",
            ));
        }
    }
    Ok(())
}

fn image(field: &str, image: &str) -> Result<(), Invalid> {
    if image.is_empty()
        || image.len() > 512
        || image.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Invalid::new(
            field,
            "must be a container image reference without spaces, e.g. ghcr.io/acme/shop:1.4.2",
        ));
    }
    Ok(())
}

fn in_range(field: &str, value: i64, min: i64, max: i64) -> Result<(), Invalid> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("must be between {min} and {max}, not {value}"),
        ))
    }
}

fn ports(spec: &PortfolioAppSpec) -> Result<(), Invalid> {
    let mut names = BTreeSet::new();
    let mut service_ports = BTreeSet::new();
    for (index, port) in spec.ports.iter().enumerate() {
        let field = format!("spec.ports[{index}]");
        if !is_dns_label(&port.name) || port.name.len() > 15 {
            return Err(Invalid::new(
                format!("{field}.name"),
                format!(
                    "{:?} must be an IANA service name: at most 15 lower case letters, digits and '-'",
                    port.name
                ),
            ));
        }
        if !names.insert(port.name.as_str()) {
            return Err(Invalid::new(
                format!("{field}.name"),
                format!("port name {:?} is used twice", port.name),
            ));
        }
        in_range(
            &format!("{field}.containerPort"),
            i64::from(port.container_port),
            1,
            65535,
        )?;
        let service_port = port.service_port.unwrap_or(port.container_port);
        in_range(
            &format!("{field}.servicePort"),
            i64::from(service_port),
            1,
            65535,
        )?;
        if !service_ports.insert((service_port, port.protocol.as_str())) {
            return Err(Invalid::new(
                format!("{field}.servicePort"),
                format!(
                    "service port {service_port}/{} is used twice",
                    port.protocol.as_str()
                ),
            ));
        }
    }
    Ok(())
}

fn env(spec: &PortfolioAppSpec) -> Result<(), Invalid> {
    let mut names = BTreeSet::new();
    for (index, var) in spec.env.iter().enumerate() {
        let field = format!("spec.env[{index}]");
        if !is_env_name(&var.name) {
            return Err(Invalid::new(
                format!("{field}.name"),
                format!("{:?} is not a valid environment variable name", var.name),
            ));
        }
        if !names.insert(var.name.as_str()) {
            return Err(Invalid::new(
                format!("{field}.name"),
                format!("{:?} is set twice", var.name),
            ));
        }
        let sources = var.value_from.as_ref().map_or(0, |from| {
            usize::from(from.secret_key_ref.is_some())
                + usize::from(from.config_map_key_ref.is_some())
        });
        match (var.value.is_some(), sources) {
            (true, 0) | (false, 1) => {}
            _ => {
                return Err(Invalid::new(
                    field,
                    "set exactly one of value, valueFrom.secretKeyRef or valueFrom.configMapKeyRef",
                ));
            }
        }
        if let Some(from) = &var.value_from {
            for key in [&from.secret_key_ref, &from.config_map_key_ref]
                .into_iter()
                .flatten()
            {
                if !is_dns_subdomain(&key.name) || !is_config_key(&key.key) {
                    return Err(Invalid::new(
                        format!("{field}.valueFrom"),
                        "the referenced name and key must be valid",
                    ));
                }
            }
        }
    }
    Ok(())
}

fn config(spec: &PortfolioAppSpec) -> Result<(), Invalid> {
    for key in spec.config.keys() {
        if !is_config_key(key) {
            return Err(Invalid::new(
                format!("spec.config.{key}"),
                "keys may hold only letters, digits, '-', '_' and '.' (at most 253 characters)",
            ));
        }
    }
    // A ConfigMap holds at most 1 MiB.
    let size: usize = spec.config.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > 1_000_000 {
        return Err(Invalid::new(
            "spec.config",
            format!("holds {size} bytes; a ConfigMap holds at most 1 MiB"),
        ));
    }
    Ok(())
}

fn resources(field: &str, resources: &AppResources) -> Result<(), Invalid> {
    for (which, amounts) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        let Some(amounts) = amounts else { continue };
        if let Some(cpu) = &amounts.cpu
            && !is_quantity(cpu)
        {
            return Err(Invalid::new(
                format!("{field}.{which}.cpu"),
                format!("{cpu:?} is not a quantity such as 250m or 1"),
            ));
        }
        if let Some(memory) = &amounts.memory
            && !is_quantity(memory)
        {
            return Err(Invalid::new(
                format!("{field}.{which}.memory"),
                format!("{memory:?} is not a quantity such as 256Mi or 1Gi"),
            ));
        }
    }
    Ok(())
}

fn probe(field: &str, probe: &Probe, spec: &PortfolioAppSpec) -> Result<(), Invalid> {
    let port = match (&probe.http, &probe.tcp) {
        (Some(http), None) => {
            if !http.path.starts_with('/') || http.path.chars().any(char::is_whitespace) {
                return Err(Invalid::new(
                    format!("{field}.http.path"),
                    "must be an absolute path without spaces, e.g. /healthz",
                ));
            }
            (format!("{field}.http.port"), &http.port)
        }
        (None, Some(tcp)) => (format!("{field}.tcp.port"), &tcp.port),
        _ => return Err(Invalid::new(field, "set exactly one of http and tcp")),
    };
    match port.1 {
        Some(name) if !spec.ports.iter().any(|p| &p.name == name) => Err(Invalid::new(
            port.0,
            format!("{name:?} is not one of spec.ports"),
        )),
        None if spec.ports.is_empty() => Err(Invalid::new(
            port.0,
            "the app declares no ports; name one in spec.ports",
        )),
        _ => {
            for (name, value, min, max) in [
                ("initialDelaySeconds", probe.initial_delay_seconds, 0, 3600),
                ("periodSeconds", probe.period_seconds, 1, 3600),
                ("timeoutSeconds", probe.timeout_seconds, 1, 600),
                ("failureThreshold", probe.failure_threshold, 1, 100),
            ] {
                if let Some(value) = value {
                    in_range(&format!("{field}.{name}"), i64::from(value), min, max)?;
                }
            }
            Ok(())
        }
    }
}

fn storage(spec: &PortfolioAppSpec, settings: &Settings) -> Result<(), Invalid> {
    let Some(storage) = &spec.storage else {
        return Ok(());
    };
    if !is_quantity(&storage.size) {
        return Err(Invalid::new(
            "spec.storage.size",
            format!("{:?} is not a quantity such as 10Gi", storage.size),
        ));
    }
    if storage.access_modes.is_empty() {
        return Err(Invalid::new(
            "spec.storage.accessModes",
            "name at least one access mode",
        ));
    }
    if !storage.mount_path.starts_with('/') || storage.mount_path.chars().any(char::is_whitespace) {
        return Err(Invalid::new(
            "spec.storage.mountPath",
            "must be an absolute path without spaces",
        ));
    }
    if let Some(class) = &storage.storage_class_name
        && !is_dns_subdomain(class)
    {
        return Err(Invalid::new(
            "spec.storage.storageClassName",
            format!("{class:?} is not a valid StorageClass name"),
        ));
    }
    let shared = storage.access_modes.iter().any(|mode| {
        matches!(
            mode,
            portfolio_api::AccessMode::ReadWriteMany | portfolio_api::AccessMode::ReadOnlyMany
        )
    });
    if spec.autoscaling.is_some() && !shared {
        return Err(Invalid::new(
            "spec.storage.accessModes",
            "with autoscaling, storage must allow several pods (ReadWriteMany or ReadOnlyMany)",
        ));
    }
    if let Some(backup) = &storage.backup {
        image("spec.storage.backup.image", &backup.image)?;
        settings.check_image("spec.storage.backup.image", &backup.image)?;
        in_range(
            "spec.storage.backup.activeDeadlineSeconds",
            backup.active_deadline_seconds,
            1,
            86_400,
        )?;
    }
    Ok(())
}

fn autoscaling(spec: &PortfolioAppSpec) -> Result<(), Invalid> {
    let Some(autoscaling) = &spec.autoscaling else {
        return Ok(());
    };
    in_range(
        "spec.autoscaling.minReplicas",
        i64::from(autoscaling.min_replicas),
        1,
        1000,
    )?;
    in_range(
        "spec.autoscaling.maxReplicas",
        i64::from(autoscaling.max_replicas),
        1,
        1000,
    )?;
    if autoscaling.min_replicas > autoscaling.max_replicas {
        return Err(Invalid::new(
            "spec.autoscaling.minReplicas",
            format!(
                "{} exceeds maxReplicas {}",
                autoscaling.min_replicas, autoscaling.max_replicas
            ),
        ));
    }
    let targets = [
        (
            "targetCPUUtilizationPercentage",
            autoscaling.target_cpu_utilization_percentage,
        ),
        (
            "targetMemoryUtilizationPercentage",
            autoscaling.target_memory_utilization_percentage,
        ),
    ];
    if targets.iter().all(|(_, target)| target.is_none()) {
        return Err(Invalid::new(
            "spec.autoscaling",
            "set a CPU or a memory target",
        ));
    }
    for (name, target) in targets {
        if let Some(target) = target {
            in_range(
                &format!("spec.autoscaling.{name}"),
                i64::from(target),
                1,
                100,
            )?;
        }
    }
    Ok(())
}

/// RFC 1123 label: what Kubernetes requires of most names.
pub fn is_dns_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// RFC 1123 subdomain.
pub fn is_dns_subdomain(value: &str) -> bool {
    !value.is_empty() && value.len() <= 253 && value.split('.').all(is_dns_label)
}

fn is_env_name(value: &str) -> bool {
    let mut chars = value.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_config_key(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value != "."
        && value != ".."
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A Kubernetes quantity in the forms people write: `250m`, `1.5`, `512Mi`, `2G`.
fn is_quantity(value: &str) -> bool {
    let suffixes = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E",
    ];
    let number = suffixes
        .iter()
        .find_map(|suffix| value.strip_suffix(suffix))
        .unwrap_or(value);
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    !whole.is_empty()
        && whole.len() <= 18
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction
            .is_none_or(|f| !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()))
}

/// A label key: an optional DNS-subdomain prefix and a name of at most 63 characters.
pub fn is_label_key(value: &str) -> bool {
    let (prefix, name) = match value.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends.
pub fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && value
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use portfolio_api::{AppEnvVar, AppPort, AppStorage, Autoscaling, HttpProbe};

    fn spec() -> PortfolioAppSpec {
        PortfolioAppSpec {
            image: "nginx:1.27".into(),
            replicas: 1,
            termination_grace_period_seconds: 30,
            pre_stop_delay_seconds: 5,
            ..Default::default()
        }
    }

    fn field_of(result: Result<(), Invalid>) -> String {
        match result {
            Err(invalid) => invalid.field,
            Ok(()) => panic!("expected an invalid-spec error"),
        }
    }

    fn check(spec: &PortfolioAppSpec) -> Result<(), Invalid> {
        app("shop", spec, &Settings::default())
    }

    fn http_port(name: &str) -> AppPort {
        AppPort {
            name: name.into(),
            container_port: 8080,
            ..Default::default()
        }
    }

    #[test]
    fn accepts_a_minimal_app() {
        check(&spec()).unwrap();
    }

    #[test]
    fn rejects_bad_names() {
        for name in ["", "Shop", "-shop", "shop-", "a_b", &"a".repeat(57)] {
            assert_eq!(
                field_of(app(name, &spec(), &Settings::default())),
                "metadata.name",
                "{name}"
            );
        }
    }

    #[test]
    fn rejects_bad_ports() {
        let mut bad = spec();
        bad.ports = vec![AppPort {
            container_port: 70000,
            ..http_port("http")
        }];
        assert_eq!(field_of(check(&bad)), "spec.ports[0].containerPort");
        bad.ports[0].container_port = 8080;
        bad.ports.push(bad.ports[0].clone());
        assert_eq!(field_of(check(&bad)), "spec.ports[1].name");
    }

    #[test]
    fn env_needs_exactly_one_source_and_unique_names() {
        let mut bad = spec();
        bad.env = vec![AppEnvVar {
            name: "A".into(),
            value: None,
            value_from: None,
        }];
        assert_eq!(field_of(check(&bad)), "spec.env[0]");
        bad.env[0].value = Some("x".into());
        bad.env.push(bad.env[0].clone());
        assert_eq!(field_of(check(&bad)), "spec.env[1].name");
    }

    #[test]
    fn rejects_bad_config_keys_and_quantities() {
        let mut bad = spec();
        bad.config.insert("a b".into(), "x".into());
        assert_eq!(field_of(check(&bad)), "spec.config.a b");
        let mut bad = spec();
        bad.storage = Some(AppStorage {
            size: "lots".into(),
            ..Default::default()
        });
        assert_eq!(field_of(check(&bad)), "spec.storage.size");
    }

    #[test]
    fn probes_must_name_a_declared_port() {
        let mut bad = spec();
        bad.probes = Some(portfolio_api::AppProbes {
            readiness: Some(Probe {
                http: Some(HttpProbe {
                    path: "/healthz".into(),
                    port: Some("admin".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        bad.ports = vec![http_port("http")];
        assert_eq!(field_of(check(&bad)), "spec.probes.readiness.http.port");
    }

    #[test]
    fn default_readiness_false_contradicts_a_readiness_probe() {
        let mut app = spec();
        app.ports = vec![http_port("http")];
        app.probes = Some(portfolio_api::AppProbes {
            readiness: Some(Probe {
                tcp: Some(portfolio_api::TcpProbe { port: None }),
                ..Default::default()
            }),
            default_readiness: false,
            ..Default::default()
        });
        let error = check(&app).unwrap_err();
        assert_eq!(error.field, "spec.probes.defaultReadiness");
        assert!(
            error.message.contains("remove one of them"),
            "{}",
            error.message
        );
        // Either alone is fine.
        app.probes.as_mut().unwrap().default_readiness = true;
        check(&app).unwrap();
        app.probes = Some(portfolio_api::AppProbes {
            default_readiness: false,
            ..Default::default()
        });
        check(&app).unwrap();
    }

    #[test]
    fn autoscaling_needs_a_target_and_an_order() {
        let mut bad = spec();
        bad.autoscaling = Some(Autoscaling {
            min_replicas: 3,
            max_replicas: 2,
            target_cpu_utilization_percentage: Some(70),
            target_memory_utilization_percentage: None,
        });
        assert_eq!(field_of(check(&bad)), "spec.autoscaling.minReplicas");
        bad.autoscaling = Some(Autoscaling {
            min_replicas: 1,
            max_replicas: 2,
            ..Default::default()
        });
        assert_eq!(field_of(check(&bad)), "spec.autoscaling");
    }

    #[test]
    fn graceful_shutdown_must_fit() {
        let mut bad = spec();
        bad.pre_stop_delay_seconds = 30;
        assert_eq!(field_of(check(&bad)), "spec.preStopDelaySeconds");
    }

    #[test]
    fn quantities() {
        for good in ["1", "250m", "0.5", "512Mi", "10Gi", "2G"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "m", "1.", ".5", "1.2.3", "-1", "1 Gi", "1gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values() {
        assert!(is_label_key("app.kubernetes.io/name"));
        assert!(is_label_key("tier"));
        assert!(!is_label_key("Bad_Prefix/x"));
        assert!(!is_label_key("a/"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-x"));
    }
}
