//! Kubernetes names and label values: checks, and the deterministic Job names.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;

/// Longest Job name: the Job controller copies it into the
/// `batch.kubernetes.io/job-name` label of its pods, and label values stop at 63.
pub const MAX_JOB_NAME: usize = 63;

/// Length of the hash part of a Job name and of a shortened label value (hex
/// digits; 40 bits).
const HASH_LEN: usize = 10;

/// Whether `name` is a DNS-1123 label: lower-case alphanumerics and `-`,
/// starting and ending alphanumeric, at most 63 characters.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Whether `name` is a DNS-1123 subdomain (the name of most objects):
/// dot-separated DNS-1123 labels, at most 253 characters.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// Whether `key` may be a key of a ConfigMap or Secret: `[-._a-zA-Z0-9]+`, at most 253.
pub fn is_data_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `value` is a valid label value: empty, or at most 63 characters of
/// alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
pub fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.is_empty()
        || (bytes.len() <= 63
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
}

/// `name` as a label value: itself when it fits, else its first characters and
/// a hash of the whole (so two long names sharing a prefix still differ).
pub fn label_value(name: &str) -> String {
    if is_label_value(name) {
        return name.to_owned();
    }
    let hash = hex(&Fnv::new().update(name.as_bytes()).finish(), HASH_LEN);
    let keep = 63 - HASH_LEN - 1;
    let prefix = trim_to_alphanumeric(&sanitize(name), keep);
    if prefix.is_empty() {
        hash
    } else {
        format!("{prefix}-{hash}")
    }
}

/// The Job name of step `key` of migration `migration`: `<migration>-<key>-<hash>`.
///
/// `hash` covers `uid`, `key` and `content` (the Job without its name), so a
/// Job keeps its name across reconciles and operator restarts exactly as long
/// as it would be the same Job, and a changed spec or setting gets a new Job
/// rather than colliding with the immutable template of the old one. The
/// migration's name is shortened as needed to stay within 63 characters.
pub fn job_name(migration: &str, uid: &str, key: &str, content: &[u8]) -> String {
    let mut hasher = Fnv::new();
    for part in [uid.as_bytes(), key.as_bytes()] {
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        hasher
            .update(&(part.len() as u64).to_le_bytes())
            .update(part);
    }
    let hash = hex(&hasher.update(content).finish(), HASH_LEN);
    let room = MAX_JOB_NAME.saturating_sub(key.len() + HASH_LEN + 2);
    let prefix = trim_to_alphanumeric(&sanitize(migration).to_ascii_lowercase(), room);
    if prefix.is_empty() {
        format!("{key}-{hash}")
    } else {
        format!("{prefix}-{key}-{hash}")
    }
}

/// FNV-1a, 64 bits: a name hash needs to tell contents apart, not to resist
/// forgery (a user who forged a collision would only block their own
/// migration), and it costs the component a few hundred bytes where SHA-256
/// costs several kilobytes. Deterministic on every platform.
struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv(Self::OFFSET)
    }

    fn update(&mut self, bytes: &[u8]) -> &mut Self {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(Self::PRIME);
        }
        self
    }

    fn finish(&self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

/// The first `digits` lower-case hex digits of `bytes`.
pub fn hex(bytes: &[u8], digits: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(digits);
    for byte in bytes {
        if out.len() >= digits {
            break;
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out.truncate(digits);
    out
}

/// `name` with every character that may not appear in a label replaced by `-`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// At most `max` leading characters of the ASCII `text`, without trailing
/// non-alphanumerics (a label must end alphanumeric).
fn trim_to_alphanumeric(text: &str, max: usize) -> String {
    let cut = &text[..text.len().min(max)];
    cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_and_subdomains() {
        assert!(is_dns_label("shop-db"));
        assert!(is_dns_label("0a"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a-"));
        assert!(!is_dns_label("Shop"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("shop.db-1"));
        assert!(!is_dns_subdomain("shop..db"));
        assert!(!is_dns_subdomain("shop_db"));
        assert!(!is_dns_subdomain(&format!("{}.a", "a".repeat(252))));
    }

    #[test]
    fn data_keys_and_label_values() {
        assert!(is_data_key("V1__init.sql"));
        assert!(!is_data_key("a/b"));
        assert!(!is_data_key(""));
        assert!(is_label_value(""));
        assert!(is_label_value("Shop_db.1"));
        assert!(!is_label_value("_a"));
        assert!(!is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn long_names_become_distinct_valid_label_values() {
        let a = format!("{}.one", "x".repeat(70));
        let b = format!("{}.two", "x".repeat(70));
        assert!(is_label_value(&label_value(&a)));
        assert_ne!(label_value(&a), label_value(&b));
        assert_eq!(label_value("shop"), "shop");
        assert_eq!(label_value(&a), label_value(&a));
    }

    #[test]
    fn job_names_are_stable_valid_and_sensitive_to_every_input() {
        let name = job_name("shop", "uid-1", "migrate", b"{}");
        assert_eq!(name, job_name("shop", "uid-1", "migrate", b"{}"));
        assert!(name.starts_with("shop-migrate-"), "{name}");
        assert!(is_dns_label(&name), "{name}");
        for other in [
            job_name("shop", "uid-2", "migrate", b"{}"),
            job_name("shop", "uid-1", "plan", b"{}"),
            job_name("shop", "uid-1", "migrate", b"{ }"),
            job_name("shop2", "uid-1", "migrate", b"{}"),
        ] {
            assert_ne!(name, other);
        }
        // Moving bytes between uid and key must not produce the same hash.
        assert_ne!(
            job_name("s", "ab", "c", b""),
            job_name("s", "a", "bc", b"").replace("-bc-", "-c-")
        );
    }

    #[test]
    fn long_and_dotted_names_are_shortened_to_a_label() {
        let long = format!("{}.example", "Very-Long.name".repeat(20));
        for key in ["plan", "migrate", "release-locks"] {
            let name = job_name(&long, "", key, b"x");
            assert!(is_dns_label(&name), "{name}");
            assert_eq!(name.len(), MAX_JOB_NAME.min(name.len()));
            assert!(name.contains(&format!("-{key}-")));
        }
        let odd = job_name("---", "", "plan", b"x");
        assert!(is_dns_label(&odd), "{odd}");
        assert!(odd.starts_with("plan-"));
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        // From the FNV reference (draft-eastlake-fnv): FNV-1a 64 of "" and "a".
        assert_eq!(Fnv::new().finish(), 0xcbf2_9ce4_8422_2325u64.to_be_bytes());
        assert_eq!(
            Fnv::new().update(b"a").finish(),
            0xaf63_dc4c_8601_ec8cu64.to_be_bytes()
        );
        assert_eq!(
            Fnv::new().update(b"foobar").finish(),
            0x8594_4171_f739_67e8u64.to_be_bytes()
        );
    }

    #[test]
    fn hex_is_lower_case_and_cut_to_length() {
        assert_eq!(hex(&[0xab, 0x01, 0xff], 5), "ab01f");
        assert_eq!(hex(&[0xab], 4), "ab");
    }
}
