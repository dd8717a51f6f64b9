//! Values the API server generates: uids, `generateName` suffixes and timestamps.

/// The current time as RFC 3339 with second precision, as Kubernetes writes timestamps.
pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        // Without OS randomness fall back to time-derived bytes; uniqueness is still checked.
        let t = jiff::Timestamp::now().as_nanosecond() as u128;
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    b
}

/// A random RFC 4122 version 4 UUID.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random suffix for `generateName` and generated volume names.
pub(crate) fn random_suffix() -> String {
    safe_encode(&random_bytes::<5>())
}

/// Kubernetes' `rand.SafeEncodeString`: maps each byte onto an alphabet without vowels or
/// confusable characters, so generated names and hashes never spell words.
pub(crate) fn safe_encode(bytes: &[u8]) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    bytes
        .iter()
        .map(|b| ALPHANUMS[*b as usize % ALPHANUMS.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_look_like_uuids() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, new_uid());
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let t = now();
        assert!(t.ends_with('Z') && t.len() == 20, "{t}");
    }
}
