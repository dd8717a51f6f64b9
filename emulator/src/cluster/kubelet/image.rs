//! Images and containers as the container runtime reports them: normalized references,
//! image digests, pull errors and container ids.

use std::time::Instant;

use crate::cluster::fnv32a;

pub(super) fn container_id(seed: &str) -> String {
    let mut h = String::new();
    let mut x = fnv32a(format!("{seed}{:?}", Instant::now()).as_bytes());
    for i in 0..8 {
        x = fnv32a(format!("{x}{i}{seed}").as_bytes());
        h.push_str(&format!("{x:08x}"));
    }
    format!("containerd://{h}")
}

/// The image reference as the container runtime reports it: registry and tag made explicit.
pub(super) fn normalize_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    match digest {
        Some(d) => format!("{full}@{d}"),
        None => full,
    }
}

/// A stable fake digest of an image, as `imageID` reports the pulled image.
pub(super) fn image_id(image: &str) -> String {
    let full = normalize_image(image);
    if full.contains("@sha256:") {
        return full;
    }
    let repo = match full.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r.to_string(),
        _ => full.clone(),
    };
    let mut hex = String::new();
    let mut x = fnv32a(full.as_bytes());
    for i in 0..8 {
        x = fnv32a(format!("{x}:{i}:{full}").as_bytes());
        hex.push_str(&format!("{x:08x}"));
    }
    format!("{repo}@sha256:{hex}")
}

pub(super) fn pull_error(image: &str) -> String {
    let full = normalize_image(image);
    let host = full.split('/').next().unwrap_or_default().to_string();
    format!(
        "failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": failed to do request: dial tcp: lookup {host}: no such host"
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_normalized_like_containerd() {
        assert_eq!(normalize_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            normalize_image("nginx:1.27"),
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(
            normalize_image("bitnami/redis:7"),
            "docker.io/bitnami/redis:7"
        );
        assert_eq!(normalize_image("ghcr.io/o/app"), "ghcr.io/o/app:latest");
        assert_eq!(
            normalize_image("localhost:5000/app:1"),
            "localhost:5000/app:1"
        );
        assert!(image_id("nginx:1").starts_with("docker.io/library/nginx@sha256:"));
        assert_eq!(image_id("nginx:1"), image_id("nginx:1"));
    }
}
