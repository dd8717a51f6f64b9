//! What a plugin is, independent of how it is loaded or called: the contract
//! version, the two worlds, content digests, and what a plugin says about itself.

use std::fmt;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Version of the WIT package this host speaks (`portfolio:plugin@…`).
pub const WIT_VERSION: &str = "0.1.0";

/// Which of the two worlds of the contract a component exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum World {
    /// `generator`: turns a `PortfolioApp` into objects.
    Generator,
    /// `migration-strategy`: runs a `DatabaseMigration` as Jobs.
    MigrationStrategy,
}

impl World {
    /// The world's name in the WIT package.
    pub fn as_str(self) -> &'static str {
        match self {
            World::Generator => "generator",
            World::MigrationStrategy => "migration-strategy",
        }
    }

    /// The interface the world exports, without version.
    pub fn interface(self) -> &'static str {
        match self {
            World::Generator => "portfolio:plugin/generation",
            World::MigrationStrategy => "portfolio:plugin/migration",
        }
    }

    pub(crate) const ALL: [World; 2] = [World::Generator, World::MigrationStrategy];
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SHA-256 of a component's bytes: its identity for caching and pinning.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// Digest of `value`'s JSON, serialised straight into the hash (no
    /// copy of the text is made). A value that cannot be serialised is
    /// hashed as far as it went.
    pub fn of_json<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        let mut hash = Sha256::new();
        feed_json(value, |bytes| hash.update(bytes));
        Digest(hash.finalize().into())
    }

    /// Lower-case hex, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        // One allocation: digests are written for every applied object.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for byte in self.0 {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        hex
    }

    /// Parse 64 lower-case hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let mut out = [0u8; 32];
        for (index, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).ok()?;
        }
        Some(Digest(out))
    }
}

/// `value`'s JSON, written piece by piece into `sink` (a hasher) instead
/// of into a text first. Serialising plain data to a sink that never fails
/// cannot fail; if it did, `sink` would have had a prefix, which only makes
/// a hash less likely to match.
pub(crate) fn feed_json<T: serde::Serialize + ?Sized>(value: &T, sink: impl FnMut(&[u8])) {
    struct Feed<F>(F);
    impl<F: FnMut(&[u8])> std::io::Write for Feed<F> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            (self.0)(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let _ = serde_json::to_writer(Feed(sink), value);
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A plugin's name and version, as it describes itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginId {
    /// A DNS-1123 label (it goes into label values and references).
    pub name: String,
    /// The plugin's own version (not the contract's), matched by `name@<requirement>`.
    pub version: semver::Version,
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// A kind a plugin declares it may emit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KindRef {
    /// `apiVersion` of the objects, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind` of the objects, e.g. `Deployment`.
    pub kind: String,
}

impl fmt::Display for KindRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.api_version, self.kind)
    }
}

/// What a plugin said about itself, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginInfo {
    /// Name and version (`name@version` in logs and status).
    pub id: PluginId,
    /// What it does, in one line for `plugin inspect` (at most 1 KiB).
    pub description: String,
    /// The kinds it may emit.
    pub kinds: Vec<KindRef>,
    /// JSON Schema of its settings, if it takes any.
    pub settings_schema: Option<Value>,
    /// Version of the contract it was built against, e.g. `0.1.0`.
    pub wit_version: semver::Version,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex() {
        let digest = Digest::of(b"hello");
        assert_eq!(Digest::from_hex(&digest.hex()), Some(digest));
        assert_eq!(
            digest.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            Digest::of_json(&serde_json::json!({"b": [1, "x"], "a": null})),
            Digest::of(br#"{"a":null,"b":[1,"x"]}"#),
            "the JSON text is what is hashed"
        );
        assert_eq!(Digest::from_hex("ABC"), None);
        assert_eq!(Digest::from_hex(&"G".repeat(64)), None);
    }
}
