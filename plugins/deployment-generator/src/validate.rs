//! Checks of the spec that the CRD schema cannot express (or that `render` runs without it).

use std::collections::BTreeSet;

use crate::Invalid;
use portfolio_api::PortfolioAppSpec;

/// Reject a spec this generator cannot turn into valid objects, naming the field.
pub fn app(name: &str, spec: &PortfolioAppSpec) -> Result<(), Invalid> {
    // Children are named `<app>` and `<app>-config`; both must stay DNS-1123 labels.
    if !is_dns_label(name) || name.len() > 63 - "-config".len() {
        return Err(Invalid::new(
            "metadata.name",
            format!(
                "{name:?} must be a DNS-1123 label of at most 56 characters (lower case letters, digits and '-')"
            ),
        ));
    }
    if spec.image.trim().is_empty() || spec.image.chars().any(char::is_whitespace) {
        return Err(Invalid::new(
            "spec.image",
            "must be a container image reference without spaces, e.g. ghcr.io/acme/shop:1.4.2",
        ));
    }
    if spec.replicas < 0 {
        return Err(Invalid::new(
            "spec.replicas",
            format!("must be 0 or more, not {}", spec.replicas),
        ));
    }
    let mut port_names = BTreeSet::new();
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
        if !port_names.insert(port.name.as_str()) {
            return Err(Invalid::new(
                format!("{field}.name"),
                format!("port name {:?} is used twice", port.name),
            ));
        }
        check_port(&format!("{field}.containerPort"), port.container_port)?;
        let service_port = port.service_port.unwrap_or(port.container_port);
        check_port(&format!("{field}.servicePort"), service_port)?;
        if !service_ports.insert((service_port, port.protocol.as_str())) {
            return Err(Invalid::new(
                format!("{field}.servicePort"),
                format!(
                    "service port {service_port}/{} is used twice",
                    port.protocol
                ),
            ));
        }
        if !matches!(port.protocol.as_str(), "TCP" | "UDP" | "SCTP") {
            return Err(Invalid::new(
                format!("{field}.protocol"),
                format!("must be TCP, UDP or SCTP, not {:?}", port.protocol),
            ));
        }
    }
    for (index, var) in spec.env.iter().enumerate() {
        let field = format!("spec.env[{index}]");
        if !is_env_name(&var.name) {
            return Err(Invalid::new(
                format!("{field}.name"),
                format!("{:?} is not a valid environment variable name", var.name),
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
    }
    for key in spec.config.keys() {
        if !is_config_key(key) {
            return Err(Invalid::new(
                format!("spec.config.{key}"),
                "keys may hold only letters, digits, '-', '_' and '.' (at most 253 characters)",
            ));
        }
    }
    Ok(())
}

fn check_port(field: &str, port: i32) -> Result<(), Invalid> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("must be between 1 and 65535, not {port}"),
        ))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use portfolio_api::{AppEnvVar, AppPort};

    fn spec() -> PortfolioAppSpec {
        PortfolioAppSpec {
            image: "nginx:1.27".into(),
            replicas: 1,
            ..Default::default()
        }
    }

    fn field_of(result: Result<(), Invalid>) -> String {
        match result {
            Err(invalid) => invalid.field,
            Ok(()) => panic!("expected an invalid-spec error"),
        }
    }

    #[test]
    fn accepts_a_minimal_app() {
        app("shop", &spec()).unwrap();
    }

    #[test]
    fn rejects_bad_names() {
        for name in ["", "Shop", "-shop", "shop-", "a_b", &"a".repeat(57)] {
            assert_eq!(field_of(app(name, &spec())), "metadata.name", "{name}");
        }
    }

    #[test]
    fn rejects_bad_ports() {
        let mut bad = spec();
        bad.ports = vec![AppPort {
            name: "http".into(),
            container_port: 70000,
            service_port: None,
            protocol: "TCP".into(),
        }];
        assert_eq!(field_of(app("shop", &bad)), "spec.ports[0].containerPort");

        bad.ports[0].container_port = 8080;
        bad.ports.push(bad.ports[0].clone());
        assert_eq!(field_of(app("shop", &bad)), "spec.ports[1].name");
    }

    #[test]
    fn env_needs_exactly_one_source() {
        let mut bad = spec();
        bad.env = vec![AppEnvVar {
            name: "A".into(),
            value: None,
            value_from: None,
        }];
        assert_eq!(field_of(app("shop", &bad)), "spec.env[0]");
    }

    #[test]
    fn rejects_bad_config_keys() {
        let mut bad = spec();
        bad.config.insert("a b".into(), "x".into());
        assert_eq!(field_of(app("shop", &bad)), "spec.config.a b");
    }
}
