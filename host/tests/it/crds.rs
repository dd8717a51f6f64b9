//! The committed CRDs in `crds/` are what the code generates; `crd` prints them.

use std::path::PathBuf;
use std::process::Command;

use portfolio_operator::crds;

use crate::common::repo;

fn crds_dir() -> PathBuf {
    repo().join("crds")
}

#[test]
fn committed_crds_are_up_to_date() {
    for crd in crds::all() {
        let generated = crds::to_yaml(&crd).expect("YAML");
        let path = crds_dir().join(crds::file_name(&crd));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &generated).expect("write CRD");
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is stale: run UPDATE_GOLDEN=1 cargo test -p portfolio-operator --test it crds::",
            path.display()
        );
    }
}

#[test]
fn the_crd_command_prints_both() {
    let output = Command::new(env!("CARGO_BIN_EXE_portfolio-operator"))
        .arg("crd")
        .output()
        .expect("run");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let expected: String = crds::all()
        .iter()
        .map(|crd| format!("---\n{}", crds::to_yaml(crd).expect("YAML")))
        .collect();
    assert_eq!(text, expected);
    assert!(text.contains("name: portfolioapps.portfolio.dev"));
    assert!(text.contains("name: databasemigrations.portfolio.dev"));
}

#[test]
fn names_columns_and_subresources() {
    let [app, migration] = <[_; 2]>::try_from(crds::all()).expect("two CRDs");
    let app = serde_json::to_value(app).expect("JSON");
    assert_eq!(app["spec"]["names"]["shortNames"][0], "papp");
    let version = &app["spec"]["versions"][0];
    assert!(version["subresources"]["status"].is_object());
    assert_eq!(
        version["subresources"]["scale"]["specReplicasPath"],
        ".spec.replicas"
    );
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(columns, ["Ready", "Replicas", "Image", "Plugin", "Age"]);
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["replicas"]["default"], 1);
    assert_eq!(spec["properties"]["ports"]["x-kubernetes-list-type"], "map");
    assert!(
        spec["x-kubernetes-validations"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    let tolerations = &spec["properties"]["scheduling"]["properties"]["tolerations"]["items"];
    assert_eq!(tolerations["x-kubernetes-preserve-unknown-fields"], true);
    let migration = serde_json::to_value(migration).expect("JSON");
    assert_eq!(migration["spec"]["names"]["shortNames"][0], "dbm");
}
