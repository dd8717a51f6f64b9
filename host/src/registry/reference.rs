//! Plugin references as users write them: `name`, `name@<semver>`, `name@sha256:<digest>`.

use std::fmt;
use std::str::FromStr;

use crate::plugin::{Digest, PluginId};

/// Which versions of a plugin a reference accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionSelector {
    /// Any version: the highest is used.
    Latest,
    /// Exactly this version (a full `x.y.z` pins).
    Exact(semver::Version),
    /// A Cargo-style requirement such as `^1.2`, `~1.2.3` or `>=1, <3`.
    Requirement(semver::VersionReq),
    /// Exactly these bytes.
    Digest(Digest),
}

/// A parsed plugin reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginRef {
    /// The plugin's name.
    pub name: String,
    /// Which of its versions.
    pub selector: VersionSelector,
}

/// A reference that cannot be parsed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid plugin reference {reference:?}: {why}")]
pub struct PluginRefError {
    /// What was written.
    pub reference: String,
    /// What is wrong with it.
    pub why: String,
}

impl PluginRef {
    /// Whether a plugin with `id` and `digest` satisfies this reference (the name included).
    pub fn matches(&self, id: &PluginId, digest: Digest) -> bool {
        if id.name != self.name {
            return false;
        }
        match &self.selector {
            VersionSelector::Latest => true,
            VersionSelector::Exact(exact) => id.version == *exact,
            VersionSelector::Requirement(requirement) => requirement.matches(&id.version),
            VersionSelector::Digest(expected) => digest == *expected,
        }
    }
}

impl FromStr for PluginRef {
    type Err = PluginRefError;

    fn from_str(reference: &str) -> Result<Self, Self::Err> {
        let error = |why: String| PluginRefError {
            reference: reference.to_owned(),
            why,
        };
        let (name, rest) = match reference.split_once('@') {
            Some((name, rest)) => (name, Some(rest)),
            None => (reference, None),
        };
        if !crate::plugin::is_dns_label(name) {
            return Err(error(
                "the name must be a DNS-1123 label (lower case letters, digits and '-')".into(),
            ));
        }
        let selector = match rest {
            None => VersionSelector::Latest,
            Some("") => return Err(error("nothing follows '@'".into())),
            Some(rest) => match rest.strip_prefix("sha256:") {
                Some(hex) => VersionSelector::Digest(Digest::from_hex(hex).ok_or_else(|| {
                    error("a digest is sha256: followed by 64 lower-case hex digits".into())
                })?),
                None => match semver::Version::parse(rest) {
                    Ok(version) => VersionSelector::Exact(version),
                    Err(_) => VersionSelector::Requirement(
                        semver::VersionReq::parse(rest).map_err(|e| {
                            error(format!(
                                "{rest:?} is neither a version nor a requirement: {e}"
                            ))
                        })?,
                    ),
                },
            },
        };
        Ok(PluginRef {
            name: name.to_owned(),
            selector,
        })
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            VersionSelector::Latest => write!(f, "{}", self.name),
            VersionSelector::Exact(version) => write!(f, "{}@{version}", self.name),
            VersionSelector::Requirement(requirement) => write!(f, "{}@{requirement}", self.name),
            VersionSelector::Digest(digest) => write!(f, "{}@{digest}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> PluginRef {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("gen").selector, VersionSelector::Latest);
        assert_eq!(
            parse("gen@1.2.3").selector,
            VersionSelector::Exact(semver::Version::new(1, 2, 3))
        );
        let VersionSelector::Requirement(req) = parse("gen@^1.2").selector else {
            panic!("expected a requirement");
        };
        assert!(req.matches(&semver::Version::new(1, 9, 0)));
        assert!(!req.matches(&semver::Version::new(2, 0, 0)));
        let VersionSelector::Requirement(req) = parse("gen@1.2").selector else {
            panic!("a partial version is a requirement");
        };
        assert!(req.matches(&semver::Version::new(1, 3, 0)));
        let hex = "ab".repeat(32);
        assert!(matches!(
            parse(&format!("gen@sha256:{hex}")).selector,
            VersionSelector::Digest(_)
        ));
    }

    #[test]
    fn display_round_trips() {
        let hex = "0f".repeat(32);
        for s in ["gen", "gen@1.2.3", "gen@^1.2", &format!("gen@sha256:{hex}")] {
            assert_eq!(parse(s).to_string(), s);
        }
    }

    #[test]
    fn rejects_malformed_references() {
        for (bad, why) in [
            ("", "DNS-1123"),
            ("Gen", "DNS-1123"),
            ("gen@", "nothing follows"),
            ("gen@sha256:abc", "64 lower-case hex"),
            (
                &format!("gen@sha256:{}", "AB".repeat(32)),
                "64 lower-case hex",
            ),
            ("gen@one", "neither a version nor a requirement"),
            ("gen@1.2.3@4", "neither"),
        ] {
            let error = bad.parse::<PluginRef>().unwrap_err();
            assert!(error.to_string().contains(why), "{bad}: {error}");
        }
    }
}
