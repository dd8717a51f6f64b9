//! The kubeconfig each emulator writes: a temporary file removed on drop, or a path kept.

use std::path::{Path, PathBuf};

use crate::base64;
use crate::error::Error;

/// Where an emulator's kubeconfig is.
pub(crate) enum Kubeconfig {
    Temp(tempfile::TempPath),
    Kept(PathBuf),
}

impl Kubeconfig {
    /// The file.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Kubeconfig::Temp(p) => p,
            Kubeconfig::Kept(p) => p,
        }
    }
}

/// The kubeconfig text for a server (JSON string literals are valid YAML scalars).
pub fn kubeconfig_yaml(server: &str, token: Option<&str>, ca_pem: Option<&str>) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let ca = match ca_pem {
        Some(pem) => format!(
            "\n    certificate-authority-data: {}",
            q(&base64::encode(pem.as_bytes()))
        ),
        None => String::new(),
    };
    let user = match token {
        Some(t) => format!("\n    token: {}", q(t)),
        None => " {}".to_string(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {}{ca}\ncontexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n    namespace: default\ncurrent-context: emulator\npreferences: {{}}\nusers:\n- name: emulator\n  user:{user}\n",
        q(server)
    )
}

/// Writes the kubeconfig for `server` to `path`, or to a temporary file.
pub(crate) fn write_kubeconfig(
    path: Option<&Path>,
    server: &str,
    token: Option<&str>,
    ca_pem: Option<&str>,
) -> Result<Kubeconfig, Error> {
    let text = kubeconfig_yaml(server, token, ca_pem);
    match path {
        Some(p) => {
            std::fs::write(p, text)?;
            Ok(Kubeconfig::Kept(p.to_path_buf()))
        }
        None => {
            let mut f = tempfile::Builder::new()
                .prefix("kube-emulator-")
                .suffix(".kubeconfig")
                .tempfile()?;
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            Ok(Kubeconfig::Temp(f.into_temp_path()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_is_valid_yaml() {
        for token in [None, Some("s3cr:et \"x\"")] {
            let text = kubeconfig_yaml("http://127.0.0.1:1", token, Some("pem"));
            let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            assert_eq!(v["clusters"][0]["cluster"]["server"], "http://127.0.0.1:1");
            assert_eq!(
                v["users"][0]["user"].get("token").and_then(|t| t.as_str()),
                token
            );
        }
    }
}
