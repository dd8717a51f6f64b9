//! Conformance suite: each test is one documented Kubernetes behaviour, driven only through
//! HTTP with kube-rs. Runs against a real cluster when `EMULATOR_CONFORMANCE_KUBECONFIG` is set.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use crate::common::{Cluster, api_err, cm, emulator_only, eventually, stream_ends};

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image, "env": [{"name": "A", "value": "1"}]}]}}
        }
    })
}

#[tokio::test]
async fn version_and_discovery() {
    let c = Cluster::new().await;
    let v = c.client.apiserver_version().await.expect("version");
    assert_eq!(v.major, "1");
    let d = kube::Discovery::new(c.client.clone())
        .run()
        .await
        .expect("discovery");
    let mut found = std::collections::BTreeSet::new();
    for g in d.groups() {
        for (ar, caps) in g.recommended_resources() {
            found.insert(format!("{}/{}", ar.group, ar.plural));
            if ar.plural == "deployments" {
                assert!(
                    caps.subresources
                        .iter()
                        .any(|(s, _)| s.plural == "deployments/status" || s.plural == "status"),
                    "{caps:?}"
                );
            }
        }
    }
    for want in [
        "/namespaces",
        "/configmaps",
        "/secrets",
        "/services",
        "/serviceaccounts",
        "/persistentvolumeclaims",
        "/pods",
        "/events",
        "apps/deployments",
        "apps/replicasets",
        "batch/jobs",
        "autoscaling/horizontalpodautoscalers",
        "policy/poddisruptionbudgets",
        "coordination.k8s.io/leases",
        "networking.k8s.io/networkpolicies",
        "networking.k8s.io/ingresses",
        "rbac.authorization.k8s.io/roles",
        "rbac.authorization.k8s.io/clusterrolebindings",
        "apiextensions.k8s.io/customresourcedefinitions",
        "events.k8s.io/events",
    ] {
        assert!(found.contains(want), "{want} missing from discovery");
    }
    let (code, list) = c.raw("GET", "/api/v1", "", vec![]).await;
    assert_eq!(code, 200);
    let cms = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "configmaps")
        .cloned()
        .unwrap();
    assert_eq!(cms["shortNames"], json!(["cm"]));
    assert!(cms["verbs"].as_array().unwrap().contains(&json!("watch")));
    let (code, _) = c.raw("GET", "/healthz", "", vec![]).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn default_namespaces_exist() {
    let c = Cluster::new().await;
    let ns: Api<Namespace> = Api::all(c.client.clone());
    for n in ["default", "kube-system"] {
        let o = ns.get(n).await.expect(n);
        assert_eq!(o.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    }
}

#[tokio::test]
async fn configmap_crud_with_optimistic_concurrency() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let created = api
        .create(&PostParams::default(), &cm("a", json!({"k": "v"})))
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some()
    );
    let (code, reason, _) = api_err(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    let mut fresh = api.get("a").await.expect("get");
    fresh.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &fresh)
        .await
        .expect("replace");
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    // The stale copy now conflicts.
    let mut stale = created.clone();
    stale.data = Some([("k".to_string(), "x".to_string())].into());
    let (code, reason, msg) = api_err(
        api.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"), "{msg}");
    assert!(msg.contains("the object has been modified"), "{msg}");
    let list = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1 + c.base_configmaps.len());
    api.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    let (code, reason, msg) = api_err(api.get("a").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert_eq!(msg, "configmaps \"a\" not found");
}

#[tokio::test]
async fn generate_name_and_name_validation() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let o: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).unwrap();
    let made = api
        .create(&PostParams::default(), &o)
        .await
        .expect("generateName");
    let name = made.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    let (code, reason, msg) = api_err(
        api.create(&PostParams::default(), &cm("Bad_Name", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{msg}");
    assert!(msg.contains("metadata.name"), "{msg}");
    let (code, body) = c
        .raw(
            "POST",
            &format!("/api/v1/namespaces/{}/configmaps", c.ns),
            "application/json",
            br#"{"metadata":{"name":"Nope!"}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 422);
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
    assert_eq!(body["kind"], "Status");
}

#[tokio::test]
async fn namespace_must_exist() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "does-not-exist-xyz");
    let (code, reason, msg) = api_err(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert!(
        msg.contains("namespaces \"does-not-exist-xyz\" not found"),
        "{msg}"
    );
}

#[tokio::test]
async fn malformed_requests_get_status_errors() {
    let c = Cluster::new().await;
    let base = format!("/api/v1/namespaces/{}/configmaps", c.ns);
    let (code, body) = c
        .raw("POST", &base, "application/json", b"{not json".to_vec())
        .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = c
        .raw("POST", &base, "application/json", b"[1,2]".to_vec())
        .await;
    assert_eq!(code, 400);
    let (code, body) = c
        .raw(
            "POST",
            &base,
            "application/json",
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    c.create_cm("p").await;
    let (code, body) = c
        .raw("PATCH", &format!("{base}/p"), "text/plain", b"{}".to_vec())
        .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let (code, body) = c
        .raw("PUT", &base, "application/json", b"{}".to_vec())
        .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (405, Some("MethodNotAllowed"))
    );
    // A path of a built-in group is claimed by its web service, which answers a Status;
    // nothing claims a group nobody serves, and the handler chain ends in Go's plain
    // `404 page not found` (apiserver's server/handler.go director, notfoundhandler).
    for path in [
        "/api/v1/things",
        "/apis/apps/v1/things",
        "/apis/apps/v9/things",
    ] {
        let (code, body) = c.raw("GET", path, "", vec![]).await;
        assert_eq!(
            (code, body["reason"].as_str()),
            (404, Some("NotFound")),
            "{path}"
        );
    }
    let (code, headers, body) = c
        .raw_with_headers("GET", "/apis/nonexistent.example.com/v1/things", "", vec![])
        .await;
    assert_eq!((code, body), (404, Value::Null), "not a Status");
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/plain")),
        "{headers:?}"
    );
    // Options that Validate{Create,Patch}Options refuse are a 422 on the options kind
    // (endpoints/handlers/create.go and patch.go; meta/v1/validation).
    let (code, body) = c
        .raw(
            "POST",
            &format!("{base}?dryRun=Yes"),
            "application/json",
            br#"{"metadata":{"name":"d"}}"#.to_vec(),
        )
        .await;
    assert_eq!(
        (code, body["details"]["kind"].as_str()),
        (422, Some("CreateOptions")),
        "{body}"
    );
    let (code, body) = c
        .raw(
            "PATCH",
            &format!("{base}/p"),
            "application/apply-patch+yaml",
            br#"{"apiVersion":"v1","kind":"ConfigMap"}"#.to_vec(),
        )
        .await;
    assert_eq!(
        (code, body["details"]["kind"].as_str()),
        (422, Some("PatchOptions")),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(
            |m| m.contains("fieldManager: Required value: is required for apply patch")
        ),
        "{body}"
    );
    let (code, _) = c
        .raw(
            "GET",
            &format!("{base}?labelSelector=a%20in%20"),
            "",
            vec![],
        )
        .await;
    assert_eq!(code, 400);
    let (code, _) = c
        .raw(
            "GET",
            &format!("{base}?fieldSelector=spec.nope%3D1"),
            "",
            vec![],
        )
        .await;
    assert_eq!(code, 400);
    let (code, _) = c.raw("GET", &format!("{base}?limit=abc"), "", vec![]).await;
    assert_eq!(code, 400);
    let (code, _) = c
        .raw("GET", &format!("{base}?continue=zzzz"), "", vec![])
        .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    for (i, tier) in ["front", "back", "front", "db", "back"].iter().enumerate() {
        let o: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}"), "labels": {"tier": tier, "n": i.to_string()}}})).unwrap();
        api.create(&PostParams::default(), &o)
            .await
            .expect("create");
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .map(|o| o.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier=front"))
                .await
                .unwrap()
        ),
        vec!["cm-0", "cm-2"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier in (back,db),n!=1"))
                .await
                .unwrap()
        ),
        vec!["cm-3", "cm-4"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("!tier"))
                .await
                .unwrap()
        ),
        c.with_base(&[])
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=cm-3"))
                .await
                .unwrap()
        ),
        vec!["cm-3"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields(&format!("metadata.namespace={}", c.ns)))
                .await
                .unwrap()
        )
        .len(),
        5 + c.base_configmaps.len()
    );
    // Pages of 2 are consistent even when objects change between pages.
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("continue token");
    assert_eq!(
        first.metadata.remaining_item_count,
        Some(3 + c.base_configmaps.len() as i64)
    );
    api.create(&PostParams::default(), &cm("cm-9", json!({})))
        .await
        .unwrap();
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let mut all: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    let mut token = second.metadata.continue_.clone();
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api
            .list(&ListParams::default().limit(2).continue_token(&t))
            .await
            .unwrap();
        all.extend(page.items.iter().map(|o| o.metadata.name.clone().unwrap()));
        token = page.metadata.continue_.clone();
    }
    assert_eq!(
        all,
        c.with_base(&["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]),
        "the list is consistent at the first page's version"
    );
}

/// `Accept: application/json;as=PartialObjectMetadata…;g=meta.k8s.io;v=v1`:
/// get, list and watch answer with each object's metadata alone, and a
/// `!=` label selector matches the objects without the label too.
#[tokio::test]
async fn metadata_only_get_list_and_watch() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let labelled = |name: &str, labels: Value| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "data": {"big": "x".repeat(100)}}))
        .expect("configmap")
    };
    api.create(
        &PostParams::default(),
        &labelled("ours", json!({"owner": "op"})),
    )
    .await
    .expect("create");
    api.create(
        &PostParams::default(),
        &labelled("theirs", json!({"owner": "team"})),
    )
    .await
    .expect("create");
    api.create(&PostParams::default(), &labelled("plain", json!({})))
        .await
        .expect("create");

    let one = api.get_metadata("theirs").await.expect("metadata of one");
    assert_eq!(one.metadata.name.as_deref(), Some("theirs"));
    assert_eq!(
        one.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );

    let list = api
        .list_metadata(&ListParams::default().labels("owner!=op"))
        .await
        .expect("metadata list");
    let mut names: Vec<String> = list
        .items
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, c.with_base(&["plain", "theirs"]));
    assert!(list.metadata.resource_version.is_some());
    let metadata: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(c.client.clone(), &c.ns);
    let events = kube::runtime::watcher(
        metadata,
        kube::runtime::watcher::Config::default().labels("owner!=op"),
    );
    let mut events = Box::pin(events);
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("a stream")
            .expect("no error")
    };
    // The first list, then a change to one the selector matches.
    while !matches!(next().await, kube::runtime::watcher::Event::InitDone) {}
    api.patch(
        "plain",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"seen": "yes"}}})),
    )
    .await
    .expect("patch");
    match next().await {
        kube::runtime::watcher::Event::Apply(object) => {
            assert_eq!(object.metadata.name.as_deref(), Some("plain"));
            assert_eq!(
                object
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("seen"))
                    .map(String::as_str),
                Some("yes")
            );
        }
        other => panic!("expected the change of plain, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_from_resource_version() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "y"}})),
    )
    .await
    .unwrap();
    api.delete("b", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match stream.try_next().await.unwrap().expect("event") {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, vec!["ADDED b", "MODIFIED a", "DELETED b"]);
}

#[tokio::test]
async fn watch_without_version_starts_with_synthetic_adds() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut s = api
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .unwrap()
        .boxed();
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("a")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn watch_with_label_selector_sees_objects_leave() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let o: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "a", "labels": {"x": "1"}}})).unwrap();
    let a = api.create(&PostParams::default(), &o).await.unwrap();
    let mut s = api
        .watch(
            &WatchParams::default().labels("x=1").timeout(60),
            a.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "2"}}})),
        )
        .await
        .unwrap();
    loop {
        match s.try_next().await.unwrap().unwrap() {
            // Kubernetes' cacher sends the last content that matched, at the change's
            // resourceVersion (cacheWatcher.convertToWatchEvent).
            WatchEvent::Deleted(o) => {
                assert_eq!(o.metadata.name.as_deref(), Some("a"));
                assert_eq!(o.metadata.labels.unwrap()["x"], "1");
                assert_eq!(
                    o.metadata.resource_version,
                    patched.metadata.resource_version
                );
                break;
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("expected DELETED, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn watch_too_old_resource_version_is_gone() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let api: Api<ConfigMap> = c.api();
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    c.emu.as_ref().unwrap().compact();
    let mut s = c.watch_cms(&a, 60).await;
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    let (code, body) = c
        .raw(
            "GET",
            &format!(
                "/api/v1/namespaces/{}/configmaps?resourceVersion={}&resourceVersionMatch=Exact",
                c.ns,
                a.metadata.resource_version.unwrap()
            ),
            "",
            vec![],
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (410, Some("Expired")));
}

#[tokio::test]
async fn watch_bookmarks_when_asked() {
    let c =
        Cluster::with(emulator::Emulator::builder().bookmark_interval(Duration::from_millis(50)))
            .await;
    emulator_only!(c);
    let api: Api<ConfigMap> = c.api();
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.unwrap();
    let mut s = api
        .watch(
            &WatchParams {
                bookmarks: true,
                ..Default::default()
            }
            .timeout(60),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => assert!(
            b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap()
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn watch_list_with_initial_events_end_bookmark() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let wp = WatchParams::streaming_lists().timeout(60);
    let mut s = api.watch(&wp, "").await.unwrap().boxed();
    let mut added = 0;
    loop {
        match s.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(_) => added += 1,
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(added, 1 + c.base_configmaps.len());
}

#[tokio::test]
async fn watch_initial_events_as_asked() {
    // With the WatchList feature (on by default since 1.34) a watch from "" or "0" is
    // defaulted to sendInitialEvents=true (SetListOptionsDefaults); an explicit false
    // starts from now, and initial events need no bookmarks (the end bookmark does)
    // (storage/cacher/watch_cache.go getAllEventsSinceLocked).
    let c = Cluster::new().await;
    c.create_cm("a").await;
    let base = format!(
        "/api/v1/namespaces/{}/configmaps?watch=true&timeoutSeconds=1",
        c.ns
    );
    let lines = |v: Vec<u8>| -> Vec<Value> {
        String::from_utf8_lossy(&v)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let watch = |query: &str| {
        let req = http::Request::builder()
            .uri(format!("{base}&{query}"))
            .body(kube::client::Body::empty())
            .unwrap();
        let client = c.client.clone();
        async move {
            let resp = client.send(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            use http_body_util::BodyExt;
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec()
        }
    };
    let added_a = |events: &[Value]| {
        events
            .iter()
            .any(|e| e["type"] == "ADDED" && e["object"]["metadata"]["name"] == "a")
    };
    let events = lines(watch("sendInitialEvents=false&resourceVersionMatch=NotOlderThan").await);
    assert!(!added_a(&events), "{events:?}");
    let events = lines(watch("sendInitialEvents=true&resourceVersionMatch=NotOlderThan").await);
    assert!(added_a(&events), "{events:?}");
    assert!(events.iter().all(|e| e["type"] != "BOOKMARK"), "{events:?}");
}

#[tokio::test]
async fn kube_runtime_watcher_and_reflector() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let (reader, _reflecting) = c.cm_reflector();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    c.reflected(&reader, 2, "the reflector to see both").await;
}

#[tokio::test]
async fn generation_and_status_subresource() {
    // An Ingress: its status has no writer in a cluster without an ingress controller (a
    // Deployment's would race with the deployment controller).
    use k8s_openapi::api::networking::v1::Ingress;
    let c = Cluster::new().await;
    let api: Api<Ingress> = c.api();
    let ing: Ingress = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
        "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}))
    .unwrap();
    let lb = |ip: &str| json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
    let ip_of = |i: &Ingress| {
        i.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .and_then(|v| v.first())
            .and_then(|x| x.ip.clone())
    };
    let created = api
        .create(&PostParams::default(), &ing)
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    // Labels are metadata: no generation bump.
    let p = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(1));
    // Status on the main resource is ignored.
    let p = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": lb("10.0.0.7")})),
        )
        .await
        .unwrap();
    assert_eq!(ip_of(&p), None);
    assert_eq!(p.metadata.generation, Some(1));
    // /status changes only status.
    let s = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": lb("10.0.0.3"), "spec": {"ingressClassName": "other"}})),
        )
        .await
        .unwrap();
    assert_eq!(ip_of(&s).as_deref(), Some("10.0.0.3"));
    assert_eq!(
        s.spec.as_ref().and_then(|s| s.ingress_class_name.clone()),
        None
    );
    assert_eq!(s.metadata.generation, Some(1));
    // Spec changes bump it.
    let p = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ingressClassName": "nginx"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(2));
    assert_eq!(
        ip_of(&p).as_deref(),
        Some("10.0.0.3"),
        "status survives spec writes"
    );
}

#[tokio::test]
async fn scale_subresource() {
    let c = Cluster::new().await;
    let api: Api<Deployment> = c.api();
    api.create(
        &PostParams::default(),
        &serde_json::from_value(deployment("web", "nginx:1")).unwrap(),
    )
    .await
    .unwrap();
    let s = api.get_scale("web").await.unwrap();
    assert_eq!(s.spec.and_then(|s| s.replicas), Some(1));
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    let d = api.get("web").await.unwrap();
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(4));
    assert_eq!(d.metadata.generation, Some(2));
}

#[tokio::test]
async fn finalizers_keep_objects_until_removed() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let o: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    let created = api.create(&PostParams::default(), &o).await.unwrap();
    let mut w = c.watch_cms(&created, 60).await;
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let held = api.get("f").await.expect("still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    // New finalizers cannot be added while deleting.
    let e = api
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).0, 422);
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let mut kinds = Vec::new();
    while !kinds.contains(&"DELETED") {
        match w.try_next().await.unwrap().unwrap() {
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            WatchEvent::Bookmark(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(api_err(api.get("f").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn delete_preconditions() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    c.create_cm("p").await;
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("nope".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let (code, reason, _) = api_err(api.delete("p", &dp).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
}

async fn owned_pair(c: &Cluster) -> (Api<ConfigMap>, String) {
    let api: Api<ConfigMap> = c.api();
    let owner = c.create_cm("owner").await;
    let uid = owner.metadata.uid.unwrap();
    let child: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "child", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": true}]}})).unwrap();
    api.create(&PostParams::default(), &child).await.unwrap();
    (api, uid)
}

#[tokio::test]
async fn propagation_background_collects_dependents() {
    let c = Cluster::new().await;
    let (api, _) = owned_pair(&c).await;
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the child to be collected", || {
        let api = api.clone();
        async move { api.get_opt("child").await.unwrap().is_none().then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn propagation_orphan_keeps_dependents() {
    let c = Cluster::new().await;
    let (api, uid) = owned_pair(&c).await;
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    eventually("the owner to go", || {
        let api = api.clone();
        async move { api.get_opt("owner").await.unwrap().is_none().then_some(()) }
    })
    .await;
    let child = eventually("the owner reference to be removed", || {
        let api = api.clone();
        let uid = uid.clone();
        async move {
            let ch = api.get("child").await.unwrap();
            let refs = ch.metadata.owner_references.clone().unwrap_or_default();
            (!refs.iter().any(|r| r.uid == uid)).then_some(ch)
        }
    })
    .await;
    assert!(child.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn propagation_foreground_deletes_dependents_first() {
    let c = Cluster::new().await;
    let (api, _) = owned_pair(&c).await;
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("owner and child to go", || {
        let api = api.clone();
        async move {
            (api.get_opt("owner").await.unwrap().is_none()
                && api.get_opt("child").await.unwrap().is_none())
            .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn delete_collection_by_label() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    for (n, l) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let o: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": n, "labels": {"l": l}}})).unwrap();
        api.create(&PostParams::default(), &o).await.unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("l=x"),
    )
    .await
    .unwrap();
    let left: Vec<_> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.metadata.name.unwrap())
        .collect();
    assert_eq!(left, c.with_base(&["c"]));
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let o = api
        .create(&pp, &cm("dry", json!({"a": "b"})))
        .await
        .expect("dry run create");
    assert_eq!(o.data.unwrap()["a"], "b");
    assert!(api.get_opt("dry").await.unwrap().is_none());
    c.create_cm("real").await;
    let patched = api
        .patch(
            "real",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"data": {"k": "changed"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["k"], "changed");
    assert_eq!(api.get("real").await.unwrap().data.unwrap()["k"], "v");
    api.delete(
        "real",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(api.get_opt("real").await.unwrap().is_some());
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    api.create(
        &PostParams::default(),
        &cm("p", json!({"a": "1", "b": "2"})),
    )
    .await
    .unwrap();
    let o = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        o.data.unwrap(),
        [
            ("b".to_string(), "2".to_string()),
            ("c".to_string(), "3".to_string())
        ]
        .into()
    );
    let path = format!("/api/v1/namespaces/{}/configmaps/p", c.ns);
    let ops = json!([{"op": "test", "path": "/data/b", "value": "2"}, {"op": "replace", "path": "/data/b", "value": "9"}]);
    let (code, o) = c
        .raw(
            "PATCH",
            &path,
            "application/json-patch+json",
            ops.to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 200, "{o}");
    assert_eq!(o["data"]["b"], "9");
    let bad = json!([{"op": "test", "path": "/data/b", "value": "nope"}]);
    let (code, _) = c
        .raw(
            "PATCH",
            &path,
            "application/json-patch+json",
            bad.to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 422);
    // Strategic merge on a Deployment merges containers and env by name.
    let dapi: Api<Deployment> = c.api();
    dapi.create(
        &PostParams::default(),
        &serde_json::from_value(deployment("web", "nginx:1")).unwrap(),
    )
    .await
    .unwrap();
    let d = dapi
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "main", "image": "nginx:2", "env": [{"name": "B", "value": "2"}]},
            {"name": "sidecar", "image": "busybox"}]}}}})),
        )
        .await
        .unwrap();
    let pod = d.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.containers.len(), 2);
    assert_eq!(pod.containers[0].image.as_deref(), Some("nginx:2"));
    assert_eq!(pod.containers[0].env.as_ref().unwrap().len(), 2);
}

/// A uid is the API server's: one an apply brings is replaced when the apply
/// creates the object, is no field of the applier's, and one that is not the
/// stored object's is refused as immutable (422) by an apply or a patch,
/// which then changes nothing. (A PUT's uid is a precondition: 409.)
#[tokio::test]
async fn a_uid_is_the_servers_and_an_apply_or_patch_cannot_change_it() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let other = "00000000-0000-4000-8000-000000000000";
    let cfg = |uid: &str, value: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "uid", "uid": uid}, "data": {"k": value}})
    };
    let ssa = PatchParams::apply("uid-test").force();
    let created = api
        .patch("uid", &ssa, &Patch::Apply(cfg(other, "v")))
        .await
        .expect("an apply with a uid creates");
    let uid = created.metadata.uid.clone().expect("a uid");
    assert_ne!(uid, other, "the server gives the uid");
    let fields = serde_json::to_string(&created.metadata.managed_fields).unwrap();
    assert!(!fields.contains("f:uid"), "{fields}");

    let refused = |e: kube::Error| match e {
        kube::Error::Api(s) => {
            let fields: Vec<String> = s
                .details
                .iter()
                .flat_map(|d| d.causes.iter().map(|c| c.field.clone()))
                .collect();
            (s.code, s.reason.clone(), fields)
        }
        other => panic!("expected an API error, got {other:?}"),
    };
    let (code, reason, fields) = refused(
        api.patch("uid", &ssa, &Patch::Apply(cfg(other, "changed")))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(fields, ["metadata.uid"]);
    let merge = json!({"metadata": {"uid": other}, "data": {"k": "changed"}});
    let (code, _, fields) = refused(
        api.patch("uid", &PatchParams::default(), &Patch::Merge(&merge))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, fields.as_slice()),
        (422, ["metadata.uid".to_owned()].as_slice())
    );
    let stored = api.get("uid").await.expect("get");
    assert_eq!(stored.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(
        stored.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(
        stored
            .data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("v")
    );

    // Its own uid changes nothing about the apply.
    let applied = api
        .patch("uid", &ssa, &Patch::Apply(cfg(&uid, "w")))
        .await
        .expect("an apply with the object's own uid");
    assert_eq!(
        applied
            .data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("w")
    );
    // A PUT's uid is a precondition.
    let mut stale = applied.clone();
    stale.metadata.uid = Some(other.to_owned());
    let (code, reason, _) = api_err(
        api.replace("uid", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn server_side_apply_ownership_conflicts_and_removal() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let cfg = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data});
    let a = PatchParams::apply("manager-a");
    let o = api
        .patch("ssa", &a, &Patch::Apply(cfg(json!({"x": "1", "y": "2"}))))
        .await
        .expect("apply creates");
    let mf = o.metadata.managed_fields.unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("manager-a"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_value(&mf[0].fields_v1).unwrap();
    assert!(fields["f:data"]["f:x"].is_object(), "{fields}");
    // Another manager changing x conflicts.
    let b = PatchParams::apply("manager-b");
    let e = api
        .patch("ssa", &b, &Patch::Apply(cfg(json!({"x": "other"}))))
        .await
        .unwrap_err();
    let (code, reason, msg) = api_err(e);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        msg.contains("manager-a") && msg.contains(".data.x"),
        "{msg}"
    );
    // Same value: shared ownership, no conflict.
    api.patch("ssa", &b, &Patch::Apply(cfg(json!({"x": "1", "z": "3"}))))
        .await
        .expect("shared");
    // Force takes ownership.
    let o = api
        .patch(
            "ssa",
            &b.clone().force(),
            &Patch::Apply(cfg(json!({"x": "forced", "z": "3"}))),
        )
        .await
        .unwrap();
    assert_eq!(o.data.as_ref().unwrap()["x"], "forced");
    // manager-a stops applying y: removed, as nobody else owns it; x stays (b owns it).
    let o = api
        .patch("ssa", &a, &Patch::Apply(cfg(json!({}))))
        .await
        .unwrap();
    let data = o.data.unwrap_or_default();
    assert!(!data.contains_key("y"), "{data:?}");
    assert_eq!(data["x"], "forced");
    assert_eq!(data["z"], "3");
    // A no-op apply does not write.
    let before = api.get("ssa").await.unwrap().metadata.resource_version;
    let after = api
        .patch(
            "ssa",
            &b,
            &Patch::Apply(cfg(json!({"x": "forced", "z": "3"}))),
        )
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(before, after);
}

#[tokio::test]
async fn server_side_apply_merges_lists_by_key() {
    let c = Cluster::new().await;
    let api: Api<Deployment> = c.api();
    let mut d = deployment("web", "nginx:1");
    api.patch(
        "web",
        &PatchParams::apply("owner"),
        &Patch::Apply(d.clone()),
    )
    .await
    .expect("apply");
    // A second manager adds a container; the first keeps its own.
    let side = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}});
    let o = api
        .patch("web", &PatchParams::apply("injector"), &Patch::Apply(side))
        .await
        .expect("second manager");
    let names: Vec<String> = o
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["main", "sidecar"]);
    // The first manager re-applies with a new image: its container changes, the sidecar stays.
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let o = api
        .patch("web", &PatchParams::apply("owner"), &Patch::Apply(d))
        .await
        .unwrap();
    let cs = o.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].image.as_deref(), Some("nginx:2"));
}

#[tokio::test]
async fn server_side_apply_to_status() {
    let c = Cluster::new().await;
    let api: Api<Deployment> = c.api();
    api.patch(
        "web",
        &PatchParams::apply("owner"),
        &Patch::Apply(deployment("web", "nginx:1")),
    )
    .await
    .unwrap();
    let st = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "status": {"replicas": 1, "readyReplicas": 1}});
    let o = api
        .patch_status(
            "web",
            &PatchParams::apply("status-writer"),
            &Patch::Apply(st),
        )
        .await
        .unwrap();
    assert_eq!(o.status.unwrap().ready_replicas, Some(1));
    let mf = o.metadata.managed_fields.unwrap();
    assert!(
        mf.iter()
            .any(|m| m.manager.as_deref() == Some("status-writer")
                && m.subresource.as_deref() == Some("status"))
    );
}

#[tokio::test]
async fn update_operations_track_managers() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    api.create(
        &PostParams {
            field_manager: Some("creator".into()),
            ..Default::default()
        },
        &cm("m", json!({"a": "1"})),
    )
    .await
    .unwrap();
    let o = api
        .patch(
            "m",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"a": "2"}})),
        )
        .await
        .unwrap();
    // The creator added the `data` map itself, as structured-merge-diff's comparison with
    // the empty ConfigMap counts it (`"f:data": {".": {}, "f:a": {}}`), and keeps it when
    // the editor takes data.a (merge/update.go, Updater.update).
    let fields: Vec<(String, String, Value)> = o
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
                serde_json::to_value(m.fields_v1).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("creator".into(), "Update".into(), json!({"f:data": {}})),
            (
                "editor".into(),
                "Update".into(),
                json!({"f:data": {"f:a": {}}})
            ),
        ]
    );
}

fn crd_manifest(group: &str) -> Value {
    let mut crd = crd_base(group);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["window"] = json!({"type": "object", "required": ["end"], "properties": {
            "start": {"type": "string"}, "end": {"type": "string"},
            "zone": {"type": "string", "default": "UTC"}}});
    crd
}

fn crd_base(group: &str) -> Value {
    // Short names and categories are cluster-wide too: each test's are its own.
    let id = group.split('.').next().unwrap_or_default().replace('-', "");
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": [format!("wdg{id}")], "categories": [format!("conftest{id}")]},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                 "additionalPrinterColumns": [
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}],
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["image"], "properties": {
                        "image": {"type": "string", "minLength": 1},
                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                        "mode": {"type": "string", "enum": ["fast", "safe"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "label": {"type": "string", "maxLength": 8, "pattern": "^[a-z]+$"},
                        "sizes": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "integer"}},
                        "maybe": {"type": "string", "nullable": true},
                        "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0, "multipleOf": 0.5},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                    "status": {"type": "object", "properties": {
                        "replicas": {"type": "integer"},
                        "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                            "items": {"type": "object", "required": ["type", "status"], "properties": {
                                "type": {"type": "string"}, "status": {"type": "string"}}}}}}}}}},
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
            ]
        }
    })
}

async fn install_crd(c: &Cluster, group: &str) -> ApiResource {
    let crds: Api<DynamicObject> = Api::all_with(c.client.clone(), &ApiResource::erase::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&()));
    let name = format!("widgets.{group}");
    c.delete_at_end("customresourcedefinition", &name);
    crds.patch(
        &name,
        &PatchParams::apply("conftest").force(),
        &Patch::Apply(crd_manifest(group)),
    )
    .await
    .expect("crd");
    eventually("the CRD to be established", || {
        let crds = crds.clone();
        let name = name.clone();
        async move {
            let o = crds.get(&name).await.ok()?;
            let conds = o.data["status"]["conditions"].as_array()?.clone();
            conds
                .iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
                .then_some(())
        }
    })
    .await;
    let ar = ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &c.ns, &ar);
    eventually("the CRD to be served", || {
        let api = api.clone();
        async move { api.list(&ListParams::default()).await.ok().map(|_| ()) }
    })
    .await;
    ar
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(
        json!({"apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

fn group_for(c: &Cluster) -> String {
    format!("{}.conformance.example.com", c.ns)
}

#[tokio::test]
async fn crd_validation_defaulting_and_pruning() {
    let c = Cluster::new().await;
    let ar = install_crd(&c, &group_for(&c)).await;
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &c.ns, &ar);
    let mut w = widget(
        "ok",
        json!({"image": "nginx", "unknown": 1, "extra": {"free": {"x": 1}}, "port": "http"}),
    );
    w.types = Some(kube::core::TypeMeta {
        api_version: ar.api_version.clone(),
        kind: "Widget".into(),
    });
    w.data["spec"]["maybe"] = Value::Null;
    w.data["spec"]["sizes"] = json!([1, 2]);
    w.data["spec"]["ratio"] = json!(1.5);
    let o = api
        .create(&PostParams::default(), &w)
        .await
        .expect("valid widget");
    assert!(o.data["spec"]["maybe"].is_null(), "nullable keeps null");
    assert_eq!(o.data["spec"]["replicas"], 1, "defaulted");
    assert!(o.data["spec"].get("unknown").is_none(), "pruned");
    assert_eq!(o.data["spec"]["extra"]["free"]["x"], 1, "preserved");
    assert_eq!(o.metadata.generation, Some(1));
    for (name, spec, field) in [
        ("missing", json!({}), "spec.image"),
        (
            "neg",
            json!({"image": "x", "replicas": -1}),
            "spec.replicas",
        ),
        (
            "big",
            json!({"image": "x", "replicas": 11}),
            "spec.replicas",
        ),
        ("enum", json!({"image": "x", "mode": "slow"}), "spec.mode"),
        (
            "type",
            json!({"image": "x", "replicas": "3"}),
            "spec.replicas",
        ),
        ("ios", json!({"image": "x", "port": 1.5}), "spec.port"),
        ("empty", json!({"image": ""}), "spec.image"),
        (
            "dup",
            json!({"image": "x", "tags": ["a", "a"]}),
            "spec.tags[1]",
        ),
        (
            "long",
            json!({"image": "x", "label": "abcdefghi"}),
            "spec.label",
        ),
        (
            "pattern",
            json!({"image": "x", "label": "ABC"}),
            "spec.label",
        ),
        ("few", json!({"image": "x", "sizes": []}), "spec.sizes"),
        (
            "many",
            json!({"image": "x", "sizes": [1, 2, 3]}),
            "spec.sizes",
        ),
        (
            "itemtype",
            json!({"image": "x", "sizes": ["a"]}),
            "spec.sizes[0]",
        ),
        ("exclusive", json!({"image": "x", "ratio": 0}), "spec.ratio"),
        (
            "multiple",
            json!({"image": "x", "ratio": 0.7}),
            "spec.ratio",
        ),
    ] {
        let mut w = widget(name, spec);
        w.types = Some(kube::core::TypeMeta {
            api_version: ar.api_version.clone(),
            kind: "Widget".into(),
        });
        let e = api.create(&PostParams::default(), &w).await.unwrap_err();
        let kube::Error::Api(s) = e else {
            panic!("{name}")
        };
        assert_eq!(
            (s.code, s.reason.as_str()),
            (422, "Invalid"),
            "{name}: {}",
            s.message
        );
        assert!(s.message.contains(field), "{name}: {}", s.message);
    }
    // Patches are validated too.
    let e = api
        .patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 99}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).0, 422);
    // Strict field validation rejects unknown fields instead of pruning them.
    let e = api
        .patch(
            "ok",
            &PatchParams {
                field_validation: Some(kube::api::ValidationDirective::Strict),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"bogus": 1}})),
        )
        .await
        .unwrap_err();
    // A patch's result that does not decode is a 422 on "patch"
    // (endpoints/handlers/patch.go, applyPatchToCurrentObject).
    let (code, reason, msg) = api_err(e);
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{msg}");
    assert!(
        msg.contains("strict decoding error: unknown field \"spec.bogus\""),
        "{msg}"
    );
    // A request body that does not decode is a 400 (create.go, transformDecodeError).
    let body = json!({"apiVersion": ar.api_version, "kind": "Widget",
        "metadata": {"name": "strict"}, "spec": {"image": "x", "bogus": 1}});
    let (code, body) = c
        .raw(
            "POST",
            &format!(
                "/apis/{}/namespaces/{}/widgets?fieldValidation=Strict",
                ar.api_version, c.ns
            ),
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (400, Some("BadRequest")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("strict decoding error: unknown field \"spec.bogus\"")),
        "{body}"
    );
    // Strategic merge patch is not supported for custom resources.
    let e = api
        .patch(
            "ok",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).0, 415);
}

#[tokio::test]
async fn crd_status_scale_and_versions() {
    let c = Cluster::new().await;
    let ar = install_crd(&c, &group_for(&c)).await;
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &c.ns, &ar);
    let mut w = widget("w", json!({"image": "nginx", "replicas": 2}));
    w.types = Some(kube::core::TypeMeta {
        api_version: ar.api_version.clone(),
        kind: "Widget".into(),
    });
    w.data["status"] = json!({"replicas": 5});
    let o = api.create(&PostParams::default(), &w).await.unwrap();
    assert!(
        o.data
            .get("status")
            .is_none_or(|s| s.get("replicas").is_none()),
        "status dropped on create"
    );
    let o = api
        .patch_status("w", &PatchParams::default(), &Patch::Merge(json!({"status": {"replicas": 2, "conditions": [{"type": "Ready", "status": "True"}]}})))
        .await
        .unwrap();
    assert_eq!(o.data["status"]["replicas"], 2);
    assert_eq!(o.metadata.generation, Some(1));
    let e = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": "many"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).0, 422, "status is validated");
    let s = api.get_scale("w").await.unwrap();
    assert_eq!(s.spec.and_then(|s| s.replicas), Some(2));
    assert_eq!(s.status.map(|s| s.replicas), Some(2));
    api.patch_scale(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    assert_eq!(api.get("w").await.unwrap().data["spec"]["replicas"], 3);
    // The same object through the other served version.
    let beta = ApiResource {
        version: "v1beta1".into(),
        api_version: format!("{}/v1beta1", ar.group),
        ..ar.clone()
    };
    let bapi: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &c.ns, &beta);
    let b = bapi.get("w").await.unwrap();
    assert_eq!(
        b.types.unwrap().api_version,
        format!("{}/v1beta1", ar.group)
    );
    assert_eq!(b.data["spec"]["replicas"], 3);
}

#[tokio::test]
async fn crd_table_output_uses_printer_columns() {
    let c = Cluster::new().await;
    let ar = install_crd(&c, &group_for(&c)).await;
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &c.ns, &ar);
    let mut w = widget("w", json!({"image": "nginx", "replicas": 2}));
    w.types = Some(kube::core::TypeMeta {
        api_version: ar.api_version.clone(),
        kind: "Widget".into(),
    });
    api.create(&PostParams::default(), &w).await.unwrap();
    api.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
    )
    .await
    .unwrap();
    let req = http::Request::builder()
        .uri(format!("/apis/{}/v1/namespaces/{}/widgets", ar.group, c.ns))
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .unwrap();
    let t: Value = c.client.request(req).await.unwrap();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, vec!["Name", "Replicas", "Ready"]);
    assert_eq!(t["rows"][0]["cells"], json!(["w", 2, "True"]));
}

#[tokio::test]
async fn crd_deletion_removes_its_objects() {
    let c = Cluster::new().await;
    let group = group_for(&c);
    let ar = install_crd(&c, &group).await;
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &c.ns, &ar);
    let mut w = widget("w", json!({"image": "nginx"}));
    w.types = Some(kube::core::TypeMeta {
        api_version: ar.api_version.clone(),
        kind: "Widget".into(),
    });
    api.create(&PostParams::default(), &w).await.unwrap();
    let crds: Api<DynamicObject> = Api::all_with(c.client.clone(), &ApiResource::erase::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&()));
    crds.delete(&format!("widgets.{group}"), &DeleteParams::default())
        .await
        .unwrap();
    eventually("the resource to stop being served", || {
        let api = api.clone();
        async move { api.list(&ListParams::default()).await.err().map(|_| ()) }
    })
    .await;
}

#[tokio::test]
async fn events_are_served_in_both_groups() {
    let c = Cluster::new().await;
    let v1: Api<k8s_openapi::api::events::v1::Event> = c.api();
    let e: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "ev1"},
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reportingController": "example.com/conftest", "reportingInstance": "conftest-1",
        "action": "Testing", "reason": "Tested", "type": "Normal", "note": "hello",
        "regarding": {"kind": "ConfigMap", "name": "x", "namespace": c.ns, "apiVersion": "v1"}
    }))
    .unwrap();
    v1.create(&PostParams::default(), &e)
        .await
        .expect("events.k8s.io/v1 create");
    let core: Api<k8s_openapi::api::core::v1::Event> = c.api();
    let got = core.get("ev1").await.expect("visible as core/v1");
    assert_eq!(got.message.as_deref(), Some("hello"));
    assert_eq!(got.involved_object.name.as_deref(), Some("x"));
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let c = Cluster::with(emulator::Emulator::builder().token("s3cret")).await;
    emulator_only!(c);
    let url = c.emu.as_ref().unwrap().url();
    let anonymous = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let ns: Api<Namespace> = Api::all(anonymous);
    let (code, reason, _) = api_err(ns.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
    // The kubeconfig carries the token.
    let ns: Api<Namespace> = Api::all(c.client.clone());
    ns.list(&ListParams::default()).await.expect("authorised");
}

#[tokio::test]
async fn many_emulators_in_one_process() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let emus: Vec<_> = (0..10)
        .map(|_| emulator::Emulator::start().expect("start"))
        .collect();
    let mut ports: Vec<u16> = emus.iter().map(|e| e.addr().port()).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 10);
    let paths: Vec<_> = emus
        .iter()
        .map(|e| e.kubeconfig_path().to_path_buf())
        .collect();
    for e in &emus {
        let kc = kube::config::Kubeconfig::read_from(e.kubeconfig_path()).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        Api::<Namespace>::all(client)
            .get("default")
            .await
            .expect("each serves");
    }
    drop(emus);
    assert!(
        paths.iter().all(|p| !p.exists()),
        "kubeconfigs removed on drop"
    );
}

#[tokio::test]
async fn namespace_deletion_removes_contents() {
    let c = Cluster::new().await;
    let nsapi: Api<Namespace> = Api::all(c.client.clone());
    let name = format!("{}-gone", c.ns);
    nsapi
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &name);
    api.create(&PostParams::default(), &cm("inside", json!({})))
        .await
        .unwrap();
    // A finalizer keeps this one (and so the namespace) until the test lets it go.
    let held: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &held).await.unwrap();
    nsapi.delete(&name, &DeleteParams::default()).await.unwrap();
    let ns = nsapi.get(&name).await.unwrap();
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    let (code, reason, _) = api_err(
        api.create(&PostParams::default(), &cm("late", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    eventually("the rest of the contents to go", || {
        let api = api.clone();
        async move {
            let held = api.get("held").await.ok()?;
            (api.get_opt("inside").await.unwrap().is_none()
                && held.metadata.deletion_timestamp.is_some())
            .then_some(())
        }
    })
    .await;
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("the namespace to go", || {
        let nsapi = nsapi.clone();
        let name = name.clone();
        async move { nsapi.get_opt(&name).await.unwrap().is_none().then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn job_defaults_validation_and_immutable_template() {
    let c = Cluster::new().await;
    let api: Api<k8s_openapi::api::batch::v1::Job> = c.api();
    let job = |image: &str, restart: &str| {
        serde_json::from_value(
            json!({"metadata": {"name": "migrate"}, "spec": {"template": {"spec": {
            "restartPolicy": restart, "containers": [{"name": "m", "image": image}]}}}}),
        )
        .unwrap()
    };
    let (code, _, msg) = api_err(
        api.create(&PostParams::default(), &job("flyway", "Always"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422, "{msg}");
    assert!(msg.contains("restartPolicy"), "{msg}");
    let j = api
        .create(&PostParams::default(), &job("flyway", "Never"))
        .await
        .unwrap();
    let spec = j.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(6));
    assert_eq!(spec.completions, Some(1));
    let uid = j.metadata.uid.unwrap();
    let sel = spec.selector.unwrap().match_labels.unwrap();
    assert_eq!(sel["batch.kubernetes.io/controller-uid"], uid);
    let labels = spec.template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels["job-name"], "migrate");
    let e = api
        .patch("migrate", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "other"}]}}}})))
        .await
        .unwrap_err();
    let (code, _, msg) = api_err(e);
    assert_eq!(code, 422);
    assert!(msg.contains("field is immutable"), "{msg}");
}

#[tokio::test]
async fn service_gets_a_cluster_ip_and_port_defaults() {
    let c = Cluster::new().await;
    let api: Api<k8s_openapi::api::core::v1::Service> = c.api();
    let s = api
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).unwrap())
        .await
        .unwrap();
    let spec = s.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(
        spec.cluster_ip
            .as_deref()
            .is_some_and(|ip| !ip.is_empty() && ip != "None")
    );
    let p = &spec.ports.unwrap()[0];
    assert_eq!(p.protocol.as_deref(), Some("TCP"));
    assert_eq!(
        p.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
    );
}

#[tokio::test]
async fn immutable_configmaps_refuse_changes() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let mut o = cm("frozen", json!({"a": "1"}));
    o.immutable = Some(true);
    api.create(&PostParams::default(), &o).await.unwrap();
    let e = api
        .patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "2"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).0, 422);
    api.patch(
        "frozen",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"ok": "yes"}}})),
    )
    .await
    .expect("metadata may change");
}

#[tokio::test]
async fn server_side_apply_uses_schema_list_types() {
    let c = Cluster::new().await;
    let ar = install_crd(&c, &group_for(&c)).await;
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &c.ns, &ar);
    let cfg = |tags: Value| json!({"apiVersion": ar.api_version, "kind": "Widget", "metadata": {"name": "w"}, "spec": {"image": "x", "tags": tags}});
    api.patch(
        "w",
        &PatchParams::apply("a"),
        &Patch::Apply(cfg(json!(["one"]))),
    )
    .await
    .unwrap();
    // A set: another manager's items are added, not replacing.
    let o = api
        .patch(
            "w",
            &PatchParams::apply("b"),
            &Patch::Apply(cfg(json!(["two"]))),
        )
        .await
        .unwrap();
    assert_eq!(o.data["spec"]["tags"], json!(["one", "two"]));
    // A list-map in status: conditions merge by type across managers.
    let st = |t: &str| json!({"apiVersion": ar.api_version, "kind": "Widget", "metadata": {"name": "w"}, "status": {"conditions": [{"type": t, "status": "True"}]}});
    api.patch_status(
        "w",
        &PatchParams::apply("ctrl-1"),
        &Patch::Apply(st("Ready")),
    )
    .await
    .unwrap();
    let o = api
        .patch_status(
            "w",
            &PatchParams::apply("ctrl-2"),
            &Patch::Apply(st("Synced")),
        )
        .await
        .unwrap();
    let types: Vec<&str> = o.data["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["Ready", "Synced"]);
    // a stops applying its tag: removed; b's stays.
    let o = api.patch("w", &PatchParams::apply("a"), &Patch::Apply(json!({"apiVersion": ar.api_version, "kind": "Widget", "metadata": {"name": "w"}, "spec": {"image": "x"}}))).await.unwrap();
    assert_eq!(o.data["spec"]["tags"], json!(["two"]));
}

#[tokio::test]
async fn dry_run_update_and_apply() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let orig = c.create_cm("d").await;
    let mut changed = orig.clone();
    changed.data = Some([("k".to_string(), "dry".to_string())].into());
    let r = api
        .replace(
            "d",
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &changed,
        )
        .await
        .unwrap();
    assert_eq!(r.data.unwrap()["k"], "dry");
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}, "data": {"k": "applied"}});
    api.patch(
        "d",
        &PatchParams::apply("m").force().dry_run(),
        &Patch::Apply(cfg),
    )
    .await
    .unwrap();
    let now = api.get("d").await.unwrap();
    assert_eq!(now.data.unwrap()["k"], "v");
    assert_eq!(
        now.metadata.resource_version,
        orig.metadata.resource_version
    );
}

#[tokio::test]
async fn list_resource_version_semantics() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let a = c.create_cm("a").await;
    let rv = a.metadata.resource_version.clone().unwrap();
    c.create_cm("b").await;
    // NotOlderThan: at least as new as rv, so both are there.
    let l = api
        .list(
            &ListParams::default()
                .at(&rv)
                .matching(kube::api::VersionMatch::NotOlderThan),
        )
        .await
        .unwrap();
    assert_eq!(l.items.len(), 2 + c.base_configmaps.len());
    // Exact: the state at rv, before b existed.
    let l = api
        .list(
            &ListParams::default()
                .at(&rv)
                .matching(kube::api::VersionMatch::Exact),
        )
        .await
        .unwrap();
    let names: Vec<_> = l
        .items
        .into_iter()
        .map(|o| o.metadata.name.unwrap())
        .collect();
    assert_eq!(names, c.with_base(&["a"]));
    assert_eq!(l.metadata.resource_version.as_deref(), Some(rv.as_str()));
    // ListOptions that ValidateListOptions refuses are a 422 on meta.k8s.io ListOptions
    // (apimachinery/pkg/apis/meta/internalversion/validation, endpoints/handlers/get.go).
    for (query, message) in [
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
        (
            "resourceVersionMatch=Exact",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            "resourceVersion=1&resourceVersionMatch=Newest",
            "Unsupported value: \"Newest\"",
        ),
        (
            "sendInitialEvents=true",
            "sendInitialEvents is forbidden for list",
        ),
    ] {
        let (code, body) = c
            .raw(
                "GET",
                &format!("/api/v1/namespaces/{}/configmaps?{query}", c.ns),
                "",
                vec![],
            )
            .await;
        assert_eq!(
            (
                code,
                body["reason"].as_str(),
                body["details"]["kind"].as_str()
            ),
            (422, Some("Invalid"), Some("ListOptions")),
            "{query}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains(message)),
            "{query}: {body}"
        );
    }
}

fn managers(o: &ConfigMap) -> Vec<(String, String)> {
    o.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn managed_fields_reset_and_kept() {
    // Kubernetes 1.36 (managedfields/internal/fieldmanager.go, decodeLiveOrNew and
    // isResetManagedFields; skipnonapplied.go): a write that leaves managedFields out keeps
    // the stored entries; an empty list, or a list of one empty entry, resets them, and an
    // update of an object without managers records none; the next apply first gives what
    // the object has to "before-first-apply".
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mf"}, "data": {"a": "1"}});
    api.patch("mf", &PatchParams::apply("owner"), &Patch::Apply(cfg))
        .await
        .unwrap();
    let editor = PatchParams {
        field_manager: Some("editor".into()),
        ..Default::default()
    };
    let o = api
        .patch("mf", &editor, &Patch::Merge(json!({"data": {"b": "2"}})))
        .await
        .unwrap();
    assert_eq!(
        managers(&o),
        [
            ("owner".into(), "Apply".into()),
            ("editor".into(), "Update".into())
        ]
    );
    for reset in [json!([]), json!([{}])] {
        let o = api
            .patch(
                "mf",
                &editor,
                &Patch::Merge(json!({"metadata": {"managedFields": reset}, "data": {"c": "3"}})),
            )
            .await
            .unwrap();
        assert_eq!(managers(&o), [], "{reset} resets them");
        let o = api
            .patch("mf", &editor, &Patch::Merge(json!({"data": {"c": "4"}})))
            .await
            .unwrap();
        assert_eq!(
            managers(&o),
            [],
            "an update tracks nothing without managers"
        );
        let apply = |a: &'static str| {
            let api = api.clone();
            async move {
                let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "mf"}, "data": {"a": a}});
                api.patch("mf", &PatchParams::apply("owner"), &Patch::Apply(cfg))
                    .await
            }
        };
        let (code, _, msg) = api_err(apply("5").await.unwrap_err());
        assert_eq!(code, 409, "{msg}");
        assert!(
            msg.contains("conflict with \"before-first-apply\""),
            "{msg}"
        );
        let o = apply("1").await.unwrap();
        assert_eq!(
            managers(&o),
            [
                ("owner".into(), "Apply".into()),
                ("before-first-apply".into(), "Update".into())
            ]
        );
        let before = o.metadata.managed_fields.unwrap()[1].clone();
        assert_eq!(
            serde_json::to_value(before.fields_v1).unwrap(),
            json!({"f:data": {".": {}, "f:a": {}, "f:b": {}, "f:c": {}}}),
            "shared with the owner, who set the same value"
        );
    }
}

#[tokio::test]
async fn kube_event_recorder_creates_and_patches_series() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let c = Cluster::new().await;
    let target = c.create_cm("target").await;
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: target.metadata.name.clone(),
        namespace: Some(c.ns.clone()),
        uid: target.metadata.uid.clone(),
        ..Default::default()
    };
    let recorder = Recorder::new(
        c.client.clone(),
        Reporter {
            controller: "conftest".into(),
            instance: Some("conftest-0".into()),
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("twice".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder
        .publish(&ev, &reference)
        .await
        .expect("first event");
    recorder
        .publish(&ev, &reference)
        .await
        .expect("repeat patches the series");
    let core: Api<k8s_openapi::api::core::v1::Event> = c.api();
    let list = core.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Tested"));
    assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2));
    assert_eq!(e.involved_object.name.as_deref(), Some("target"));
}

#[tokio::test]
async fn kube_runtime_finalizer_helper() {
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{Event, finalizer};
    use std::sync::Arc;
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    c.create_cm("guarded").await;
    let run = |api: Api<ConfigMap>| async move {
        let obj = Arc::new(api.get("guarded").await.unwrap());
        finalizer(&api, "example.com/cleanup", obj, |e| async move {
            Ok::<_, std::io::Error>(match e {
                Event::Apply(_) | Event::Cleanup(_) => Action::await_change(),
            })
        })
        .await
        .expect("finalizer step")
    };
    // First pass adds the finalizer with a JSON patch that tests a missing member for null.
    run(api.clone()).await;
    let o = api.get("guarded").await.unwrap();
    assert_eq!(
        o.metadata.finalizers,
        Some(vec!["example.com/cleanup".to_string()])
    );
    run(api.clone()).await;
    api.delete("guarded", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        api.get("guarded")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    // The cleanup pass removes it (test + remove at its index), and the object goes.
    run(api.clone()).await;
    eventually("the object to go", || {
        let api = api.clone();
        async move {
            api.get_opt("guarded")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
}

struct FailNext(std::sync::Mutex<u32>);

impl emulator::RequestHook for FailNext {
    fn on_request(&self, info: &emulator::RequestInfo) -> emulator::HookOutcome {
        let mut left = self.0.lock().unwrap();
        if *left > 0 && info.resource == "configmaps" && info.verb == "get" {
            *left -= 1;
            // A 500: kube-rs retries 429/503/504 by itself, which would hide the fault.
            let e = emulator::ApiError::internal("injected");
            return emulator::HookOutcome {
                fail: Some(e),
                ..Default::default()
            };
        }
        emulator::HookOutcome::default()
    }
}

#[tokio::test]
async fn request_hook_injects_faults() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let api: Api<ConfigMap> = c.api();
    c.create_cm("x").await;
    c.emu
        .as_ref()
        .unwrap()
        .set_request_hook(Some(std::sync::Arc::new(FailNext(std::sync::Mutex::new(
            1,
        )))));
    let (code, reason, _) = api_err(api.get("x").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (500, "InternalError"));
    api.get("x").await.expect("only the next request fails");
}

#[tokio::test]
async fn cut_watches_ends_streams() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let a = c.create_cm("x").await;
    let mut s = c.watch_cms(&a, 290).await;
    c.emu.as_ref().unwrap().cut_watches();
    assert!(stream_ends(&mut s).await);
}

#[tokio::test]
async fn kube_runtime_controller_reconciles_owned_children() {
    use kube::Resource;
    use kube::runtime::controller::{Action, Controller};
    use std::sync::Arc;
    let c = Cluster::new().await;
    let parents: Api<ConfigMap> = c.api();
    let children: Api<k8s_openapi::api::core::v1::Secret> = c.api();
    async fn reconcile(
        parent: Arc<ConfigMap>,
        api: Arc<Api<k8s_openapi::api::core::v1::Secret>>,
    ) -> Result<Action, kube::Error> {
        let oref = parent.controller_owner_ref(&()).expect("owner ref");
        let child = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{}-child", parent.metadata.name.as_deref().unwrap_or_default()),
                "ownerReferences": [oref], "labels": {"conftest/owned": "true"}},
            "stringData": {"from": parent.data.as_ref().and_then(|d| d.get("v")).cloned().unwrap_or_default()}});
        api.patch(
            &format!(
                "{}-child",
                parent.metadata.name.as_deref().unwrap_or_default()
            ),
            &PatchParams::apply("conftest-controller").force(),
            &Patch::Apply(child),
        )
        .await?;
        Ok(Action::await_change())
    }
    let ctx = Arc::new(children.clone());
    let controller = Controller::new(
        parents.clone(),
        kube::runtime::watcher::Config::default().labels("conftest/parent=true"),
    )
    .owns(
        children.clone(),
        kube::runtime::watcher::Config::default().labels("conftest/owned=true"),
    )
    .run(
        reconcile,
        |_, _, _| Action::requeue(Duration::from_secs(1)),
        ctx,
    )
    .for_each(|_| async {});
    let task = tokio::spawn(controller);
    let parent: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "p", "labels": {"conftest/parent": "true"}}, "data": {"v": "1"}})).unwrap();
    parents
        .create(&PostParams::default(), &parent)
        .await
        .unwrap();
    eventually("the child to be created", || {
        let children = children.clone();
        async move { children.get_opt("p-child").await.unwrap() }
    })
    .await;
    // The child is changed behind the controller's back: the owns() watch triggers a repair.
    children
        .patch(
            "p-child",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"drift": "yes"}}, "data": {"from": "ZHJpZnQ="}}),
            ),
        )
        .await
        .unwrap();
    parents
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await
        .unwrap();
    eventually("the child to follow the parent", || {
        let children = children.clone();
        async move {
            let s = children.get("p-child").await.unwrap();
            (s.data
                .as_ref()
                .and_then(|d| d.get("from"))
                .map(|b| b.0.clone())
                == Some(b"2".to_vec()))
            .then_some(())
        }
    })
    .await;
    parents.delete("p", &DeleteParams::default()).await.unwrap();
    eventually("the child to be garbage-collected", || {
        let children = children.clone();
        async move {
            children
                .get_opt("p-child")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn history_window_expires_old_versions() {
    let c = Cluster::with(emulator::Emulator::builder().history_window(5)).await;
    emulator_only!(c);
    let api: Api<ConfigMap> = c.api();
    let first = c.create_cm("first").await;
    let old_rv = first.metadata.resource_version.unwrap();
    // Within the window a watch replays history.
    let mut s = api
        .watch(&WatchParams::default().timeout(60), &old_rv)
        .await
        .unwrap()
        .boxed();
    c.create_cm("second").await;
    assert!(matches!(
        s.try_next().await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));
    for i in 0..10 {
        c.create_cm(&format!("filler-{i}")).await;
    }
    let mut s = api
        .watch(&WatchParams::default().timeout(60), &old_rv)
        .await
        .unwrap()
        .boxed();
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    // A continue token from before the window is expired too.
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    let token = page.metadata.continue_.unwrap();
    for i in 0..10 {
        c.create_cm(&format!("more-{i}")).await;
    }
    let (code, _, _) = api_err(
        api.list(&ListParams::default().limit(1).continue_token(&token))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 410);
}

#[tokio::test]
async fn builtin_unknown_fields_and_types() {
    let c = Cluster::new().await;
    let base = format!("/apis/apps/v1/namespaces/{}/deployments", c.ns);
    let mut d = deployment("web", "nginx:1");
    d["spec"]["replicaz"] = json!(3);
    // Default (Warn): the unknown field is dropped.
    let (code, body) = c
        .raw(
            "POST",
            &base,
            "application/json",
            d.to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert!(body["spec"].get("replicaz").is_none());
    // Strict: refused.
    d["metadata"]["name"] = json!("strict");
    let (code, body) = c
        .raw(
            "POST",
            &format!("{base}?fieldValidation=Strict"),
            "application/json",
            d.to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.replicaz\""),
        "{body}"
    );
    // A wrong type cannot be decoded.
    let mut bad = deployment("typed", "nginx:1");
    bad["spec"]["replicas"] = json!("three");
    let (code, body) = c
        .raw(
            "POST",
            &base,
            "application/json",
            bad.to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    // Quantities accept numbers and quantity strings, and nothing else.
    let mut q = deployment("quant", "nginx:1");
    q["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"cpu": 0.5, "memory": "64Mi"}});
    let (code, body) = c
        .raw(
            "POST",
            &base,
            "application/json",
            q.to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    q["metadata"]["name"] = json!("quant-bad");
    q["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!("lots");
    let (code, body) = c
        .raw(
            "POST",
            &base,
            "application/json",
            q.to_string().into_bytes(),
        )
        .await;
    assert!(code == 400 || code == 422, "{code} {body}");
    // Secret data must be base64.
    let (code, body) = c
        .raw(
            "POST",
            &format!("/api/v1/namespaces/{}/secrets", c.ns),
            "application/json",
            br#"{"metadata":{"name":"s"},"data":{"k":"not base64!"}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn server_side_apply_refuses_undeclared_fields() {
    let c = Cluster::new().await;
    let api: Api<Deployment> = c.api();
    let mut d = deployment("web", "nginx:1");
    d["spec"]["replicaz"] = json!(3);
    let (code, _, msg) = api_err(
        api.patch("web", &PatchParams::apply("m"), &Patch::Apply(d))
            .await
            .unwrap_err(),
    );
    // Kubernetes answers 500 today (kubernetes#139253); its fix would make it 400.
    assert!(code == 500 || code == 400, "{code}");
    assert!(
        msg.contains("field not declared in schema") && msg.contains("replicaz"),
        "{msg}"
    );
    let ar = install_crd(&c, &group_for(&c)).await;
    let wapi: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &c.ns, &ar);
    let w = json!({"apiVersion": ar.api_version, "kind": "Widget", "metadata": {"name": "w"}, "spec": {"image": "x", "nope": 1}});
    let (code, _, msg) = api_err(
        wapi.patch("w", &PatchParams::apply("m"), &Patch::Apply(w))
            .await
            .unwrap_err(),
    );
    // Kubernetes answers 500 today (kubernetes#139253); its fix would make it 400.
    assert!(code == 500 || code == 400, "{code}");
    assert!(msg.contains("field not declared in schema"), "{msg}");
}

#[tokio::test]
async fn tls_with_token() {
    let c = Cluster::with(emulator::Emulator::builder().tls(true).token("s3cret")).await;
    emulator_only!(c);
    assert!(c.emu.as_ref().unwrap().url().starts_with("https://"));
    let ns: Api<Namespace> = Api::all(c.client.clone());
    ns.get("default")
        .await
        .expect("https with the kubeconfig's CA and token");
}

#[tokio::test]
async fn server_side_apply_refuses_duplicate_keys() {
    let c = Cluster::new().await;
    let api: Api<Deployment> = c.api();
    let mut d = deployment("web", "nginx:1");
    d["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]);
    let (code, _, msg) = api_err(
        api.patch("web", &PatchParams::apply("m"), &Patch::Apply(d))
            .await
            .unwrap_err(),
    );
    // Kubernetes answers 500 for typed-patch failures (kubernetes#139253).
    assert!(code == 500 || code == 400, "{code}");
    assert!(msg.contains("duplicate entries for key"), "{msg}");
}

#[tokio::test]
async fn configmaps_hold_at_most_one_mebibyte() {
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let fits = "x".repeat(1024 * 1024 - 10);
    api.create(&PostParams::default(), &cm("fits", json!({"blob": fits})))
        .await
        .expect("just under 1 MiB");
    let big = "x".repeat(1024 * 1024 + 1);
    let (code, reason, _) = api_err(
        api.create(&PostParams::default(), &cm("big", json!({"blob": big})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn watch_from_a_future_version_starts_there() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let api: Api<ConfigMap> = c.api();
    let a = c.create_cm("a").await;
    let rv: u64 = a.metadata.resource_version.unwrap().parse().unwrap();
    let mut s = api
        .watch(&WatchParams::default().timeout(60), &(rv + 2).to_string())
        .await
        .unwrap()
        .boxed();
    for n in ["b", "c", "d"] {
        c.create_cm(n).await;
    }
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("d")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn deployment_and_pod_template_defaults() {
    let c = Cluster::new().await;
    let api: Api<Deployment> = c.api();
    let mut d = deployment("web", "nginx:1");
    d["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
    d["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "side", "image": "busybox"}));
    let o = api
        .create(&PostParams::default(), &serde_json::from_value(d).unwrap())
        .await
        .unwrap();
    let spec = o.spec.unwrap();
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let strategy = spec.strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let ru = strategy.rolling_update.unwrap();
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Always"));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    assert_eq!(
        pod.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    assert_eq!(
        pod.containers[1].image_pull_policy.as_deref(),
        Some("Always"),
        "untagged image"
    );
    assert_eq!(
        pod.containers[0].termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    assert_eq!(
        pod.containers[0].ports.as_ref().unwrap()[0]
            .protocol
            .as_deref(),
        Some("TCP")
    );
}

#[tokio::test]
async fn apply_without_a_name_updates_the_named_object_but_cannot_create_one() {
    // Kubernetes checks the name of the object it is about to store (endpoints/handlers
    // rest.go checkName, called from patch.go applyPatch): an apply merges the
    // configuration into the live object, whose name a nameless configuration keeps, but
    // into an empty object when there is none, which has no name to keep.
    let c = Cluster::new().await;
    let api: Api<ConfigMap> = c.api();
    let nameless =
        |value: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": value}});
    let (code, reason, msg) = api_err(
        api.patch("cm", &PatchParams::apply("m"), &Patch::Apply(nameless("1")))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"), "{msg}");
    assert_eq!(
        msg,
        "the name of the object (cm based on URL) was undeterminable: name must be provided"
    );
    api.create(&PostParams::default(), &cm("cm", json!({"was": "0"})))
        .await
        .expect("create");
    let o = api
        .patch("cm", &PatchParams::apply("m"), &Patch::Apply(nameless("1")))
        .await
        .expect("apply without a name");
    assert_eq!(o.metadata.name.as_deref(), Some("cm"));
    assert_eq!(o.data.unwrap_or_default()["k"], "1");
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}});
    let (code, _, msg) = api_err(
        api.patch("cm", &PatchParams::apply("m"), &Patch::Apply(other))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400, "{msg}");
    assert_eq!(
        msg,
        "the name of the object (other) does not match the name on the URL (cm)"
    );
    // An update (PUT) checks the body's own name (update.go).
    let (code, body) = c
        .raw(
            "PUT",
            &format!("/api/v1/namespaces/{}/configmaps/cm", c.ns),
            "application/json",
            serde_json::to_vec(&nameless("2")).unwrap(),
        )
        .await;
    assert_eq!(
        (code, body["message"].as_str()),
        (
            400,
            Some(
                "the name of the object (cm based on URL) was undeterminable: name must be provided"
            )
        )
    );
}

#[tokio::test]
async fn apply_prunes_a_struct_its_manager_stopped_applying_as_a_whole() {
    let c = Cluster::new().await;
    let ar = install_crd(&c, &group_for(&c)).await;
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &c.ns, &ar);
    let applied = |spec: Value| json!({"apiVersion": ar.api_version, "kind": "Widget", "metadata": {"name": "w"}, "spec": spec});
    let o = api
        .patch(
            "w",
            &PatchParams::apply("owner"),
            &Patch::Apply(applied(
                json!({"image": "x", "window": {"start": "1", "end": "2"}}),
            )),
        )
        .await
        .expect("apply");
    assert_eq!(o.data["spec"]["window"]["zone"], "UTC", "defaulted");
    // Without the struct: it goes whole (with the defaulted field nobody owned), not
    // as an empty or partial struct that would fail `required`.
    let o = api
        .patch(
            "w",
            &PatchParams::apply("owner"),
            &Patch::Apply(applied(json!({"image": "x"}))),
        )
        .await
        .expect("apply without the struct");
    assert!(o.data["spec"].get("window").is_none(), "{}", o.data);
    // A struct another manager still has a field of stays, with that field.
    api.patch(
        "w",
        &PatchParams::apply("owner"),
        &Patch::Apply(applied(
            json!({"image": "x", "window": {"start": "1", "end": "2"}}),
        )),
    )
    .await
    .expect("apply");
    api.patch(
        "w",
        &PatchParams::apply("other").force(),
        &Patch::Apply(
            json!({"apiVersion": ar.api_version, "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"window": {"end": "3"}}}),
        ),
    )
    .await
    .expect("another manager");
    let o = api
        .patch(
            "w",
            &PatchParams::apply("owner"),
            &Patch::Apply(applied(json!({"image": "x"}))),
        )
        .await
        .expect("apply without the struct");
    assert_eq!(o.data["spec"]["window"]["end"], "3", "{}", o.data);
    assert!(
        o.data["spec"]["window"].get("start").is_none(),
        "{}",
        o.data
    );
}

#[tokio::test]
async fn validation_ratchets_values_an_update_leaves_unchanged() {
    let c = Cluster::new().await;
    let group = group_for(&c);
    let ar = install_crd(&c, &group).await;
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &c.ns, &ar);
    let mut w = widget("w", json!({"image": "x", "replicas": 8}));
    w.types = Some(kube::core::TypeMeta {
        api_version: ar.api_version.clone(),
        kind: "Widget".into(),
    });
    api.create(&PostParams::default(), &w)
        .await
        .expect("create");
    // The schema tightens: at most 5 replicas.
    let crds: Api<DynamicObject> = Api::all_with(c.client.clone(), &ApiResource::erase::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&()));
    let path =
        "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/replicas/maximum";
    let patch: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": path, "value": 5}])).unwrap();
    crds.patch(
        &format!("widgets.{group}"),
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await
    .expect("tighten the CRD");
    eventually("the tighter schema to apply", || {
        let api = api.clone();
        let api_version = ar.api_version.clone();
        async move {
            let mut w = widget("probe", json!({"image": "x", "replicas": 8}));
            w.types = Some(kube::core::TypeMeta {
                api_version,
                kind: "Widget".into(),
            });
            api.create(&PostParams::default(), &w)
                .await
                .is_err()
                .then_some(())
        }
    })
    .await;
    // Other fields can change while the now-invalid value stays as it is...
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": "y"}})),
    )
    .await
    .expect("an unrelated change ratchets");
    api.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 8}})),
    )
    .await
    .expect("a status write ratchets");
    // ...but it cannot be changed to another invalid value.
    let e = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}})),
        )
        .await
        .unwrap_err();
    let (code, _, message) = api_err(e);
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.replicas"), "{message}");
}

/// A key twice in one map of an apply's body: read with the last value winning, and
/// judged by `fieldValidation` once the apply has merged (`applyPatcher`): refused under
/// Strict, a warning under Warn (the default), nothing under Ignore; the apply's own
/// errors (a conflict here) come first.
#[tokio::test]
async fn apply_duplicate_keys_are_judged_by_field_validation() {
    let c = Cluster::new().await;
    let base = format!("/api/v1/namespaces/{}/configmaps", c.ns);
    let body = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: \"1\"\n  a: \"2\"\n"
        )
        .into_bytes()
    };
    let apply = |name: &str, query: &str| format!("{base}/{name}?fieldManager=mine{query}");
    const DUPLICATE: &str = "line 7: key \"a\" already set in map";
    // An apply that is stored, with the last value of `a`: its warnings.
    let accepted = async |name: &str, query: &str, body: Vec<u8>| -> Vec<String> {
        let (code, headers, stored) = c
            .raw_with_headers(
                "PATCH",
                &apply(name, query),
                "application/apply-patch+yaml",
                body,
            )
            .await;
        assert_eq!(code, 201, "{stored}");
        assert_eq!(stored["data"], json!({"a": "2"}), "{stored}");
        headers
            .get_all("Warning")
            .iter()
            .map(|h| h.to_str().unwrap_or_default().to_owned())
            .collect()
    };
    // As the Warning header quotes it.
    let warned = |line: u32| format!("line {line}: key \\\"a\\\" already set in map");
    // The apply of `name` under Strict: its status and body.
    let strict = async |name: &str| {
        c.raw(
            "PATCH",
            &apply(name, "&fieldValidation=Strict"),
            "application/apply-patch+yaml",
            body(name),
        )
        .await
    };

    // Strict: refused, nothing stored.
    let (code, body_seen) = strict("strict").await;
    assert_eq!(code, 400, "{body_seen}");
    assert_eq!(
        body_seen["message"],
        format!(
            "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  {DUPLICATE}"
        ),
        "{body_seen}"
    );
    let (code, _) = c
        .raw(
            "GET",
            &format!("{base}/strict"),
            "application/json",
            Vec::new(),
        )
        .await;
    assert_eq!(code, 404);

    // Warn, asked for or by default: stored with the last value, and a warning.
    for (name, query) in [("warn", "&fieldValidation=Warn"), ("default", "")] {
        let warnings = accepted(name, query, body(name)).await;
        assert!(
            warnings.len() == 1 && warnings[0].contains(&warned(7)),
            "{name}: {warnings:?}"
        );
    }

    // Ignore: stored with the last value, nothing said.
    let warnings = accepted("ignore", "&fieldValidation=Ignore", body("ignore")).await;
    assert!(warnings.is_empty(), "{warnings:?}");

    // A JSON body (what kube-rs and client-go send) is YAML too: its duplicate is on
    // line 1.
    let json_body =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"json"},"data":{"a":"1","a":"2"}}"#;
    let warnings = accepted("json", "", json_body.to_vec()).await;
    assert!(
        warnings.len() == 1 && warnings[0].contains(&warned(1)),
        "{warnings:?}"
    );

    // The apply's own error first: another manager owns data.a, and the apply is not
    // forced.
    let (code, stored) = c
        .raw(
            "PATCH",
            &format!("{base}/owned?fieldManager=other"),
            "application/apply-patch+yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\ndata:\n  a: \"0\"\n"
                .to_vec(),
        )
        .await;
    assert_eq!(code, 201, "{stored}");
    let (code, refused) = strict("owned").await;
    assert_eq!(code, 409, "{refused}");
}
