//! Watched objects read straight off the wire into what the caches keep.
//!
//! kube's `DynamicObject` reads an object through two flattened fields,
//! which makes serde buffer the whole object once before building it, and
//! builds every `managedFields` entry (most of an object's bytes) only for
//! the caches to drop them. Here the metadata is read field by field and
//! `managedFields` entries are looked into without being built. A watched
//! child or DatabaseMigration ([`WireChild`]) keeps the rest as the text its
//! cache holds, copied token by token; an object parsed from that text
//! ([`WireObject`]) gets the rest as a JSON tree. The same objects, without
//! the buffering and the trees built only to be dropped.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    FieldsV1, ManagedFieldsEntry, ObjectMeta, OwnerReference, Time,
};
use kube::Resource;
use kube::core::{DynamicObject, DynamicResourceScope, TypeMeta};
use kube::discovery::ApiResource;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::decorate::FIELD_MANAGER;

/// An object's metadata as it comes: every field of `ObjectMeta`, with its
/// `managedFields` read as `M` (skipped, or looked into).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound = "M: Deserialize<'de>")]
pub(crate) struct WireMeta<M> {
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    deletion_grace_period_seconds: Option<i64>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
    #[serde(default)]
    finalizers: Option<Vec<String>>,
    #[serde(default)]
    generate_name: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    managed_fields: Option<M>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerReference>>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    self_link: Option<String>,
    #[serde(default)]
    uid: Option<String>,
}

impl<M> WireMeta<M> {
    /// The metadata, with `managed_fields` in place of what was read.
    fn into_meta(self, managed_fields: Option<Vec<ManagedFieldsEntry>>) -> ObjectMeta {
        ObjectMeta {
            annotations: self.annotations,
            creation_timestamp: self.creation_timestamp,
            deletion_grace_period_seconds: self.deletion_grace_period_seconds,
            deletion_timestamp: self.deletion_timestamp,
            finalizers: self.finalizers,
            generate_name: self.generate_name,
            generation: self.generation,
            labels: self.labels,
            managed_fields,
            name: self.name,
            namespace: self.namespace,
            owner_references: self.owner_references,
            resource_version: self.resource_version,
            self_link: self.self_link,
            uid: self.uid,
        }
    }
}

/// Metadata whose `managedFields` are skipped unread (an app's: nothing
/// reads them).
pub(crate) type MetaWithoutFields = WireMeta<IgnoredAny>;

impl MetaWithoutFields {
    /// The metadata, without managed fields.
    pub(crate) fn into_object_meta(self) -> ObjectMeta {
        self.into_meta(None)
    }
}

/// One `managedFields` entry, read for whether it claims `spec.replicas`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEntry {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    fields_type: Option<String>,
    #[serde(default, rename = "fieldsV1")]
    fields_v1: Option<SpecFields>,
    #[serde(default)]
    manager: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    subresource: Option<String>,
}

/// `fieldsV1`, read only as far as `f:spec` (everything else is skipped;
/// anything but a map claims nothing).
struct SpecFields {
    spec: Option<ReplicasField>,
}

/// `f:spec`, read only for `f:replicas`.
struct ReplicasField {
    replicas: bool,
}

impl<'de> Deserialize<'de> for SpecFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = deserializer.deserialize_any(Probe::<ReplicasField>::new("f:spec"))?;
        Ok(SpecFields { spec })
    }
}

impl<'de> Deserialize<'de> for ReplicasField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let replicas = deserializer.deserialize_any(Probe::<IgnoredAny>::new("f:replicas"))?;
        Ok(ReplicasField {
            replicas: replicas.is_some(),
        })
    }
}

/// Reads one entry `key` of a map as `T`, skipping the others unbuilt; of
/// anything that is not a map, nothing.
struct Probe<T> {
    key: &'static str,
    found: std::marker::PhantomData<T>,
}

impl<T> Probe<T> {
    fn new(key: &'static str) -> Self {
        Probe {
            key,
            found: std::marker::PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Probe<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("managed fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.key && found.is_none() {
                found = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
}

impl WireEntry {
    /// The operator's claim on `spec.replicas`, if this entry is one.
    /// `managedFields` is most of a small object's bytes and only one bit of
    /// it is ever read: whether the operator's apply owns `spec.replicas`
    /// (the autoscaling handover, [`super::decide`]). So the operator's
    /// `Apply` entries are kept with their fields cut to `f:spec.f:replicas`,
    /// and every other entry (other managers, other fields) goes. The rest
    /// of the object stays: the plugin sees the observed children whole, and
    /// what the operator applied is compared field by field against them.
    fn into_replicas_claim(self) -> Option<ManagedFieldsEntry> {
        let claims = self.manager.as_deref() == Some(FIELD_MANAGER)
            && self.operation.as_deref() == Some("Apply")
            && self
                .fields_v1
                .and_then(|fields| fields.spec)
                .is_some_and(|spec| spec.replicas);
        claims.then(|| ManagedFieldsEntry {
            api_version: self.api_version,
            fields_type: self.fields_type,
            fields_v1: Some(FieldsV1(serde_json::json!({"f:spec": {"f:replicas": {}}}))),
            manager: self.manager,
            operation: self.operation,
            subresource: self.subresource,
            time: None,
        })
    }
}

/// A child (or DatabaseMigration) parsed whole, from the text its cache
/// keeps ([`WireChild::text`]) or as sent: its metadata with only the
/// operator's claim on `spec.replicas` of its managed fields
/// ([`WireEntry::into_replicas_claim`]), the rest as JSON.
#[derive(Clone, Debug)]
pub struct WireObject(pub DynamicObject);

impl<'de> Deserialize<'de> for WireObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = WireObject;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WireObject, A::Error> {
        let parts = Parts::<Vec<WireEntry>>::read(map)?;
        Ok(WireObject(DynamicObject {
            types: parts.types,
            metadata: parts.metadata.map(slim_meta).unwrap_or_default(),
            data: Value::Object(parts.rest),
        }))
    }
}

/// The metadata as the caches keep it: of `managedFields`, only the
/// operator's claim on `spec.replicas` ([`WireEntry::into_replicas_claim`]).
fn slim_meta(mut meta: WireMeta<Vec<WireEntry>>) -> ObjectMeta {
    let claims: Vec<ManagedFieldsEntry> = meta
        .managed_fields
        .take()
        .into_iter()
        .flatten()
        .filter_map(WireEntry::into_replicas_claim)
        .collect();
    meta.into_meta((!claims.is_empty()).then_some(claims))
}

/// A watched child, read off the wire for the child caches: its metadata as
/// [`WireObject`] reads it, and the whole object as the JSON text the cache
/// keeps ([`super::children::Cached`]), which parses as [`WireObject`] into
/// the object [`WireObject`] reads from the wire.
/// Nothing downstream of a child watch reads the rest of an event's object
/// (the controller maps it to its owner, the echo filter and the index read
/// the metadata), so the rest is copied token by token into the text,
/// never built as a JSON tree only to be written out again and dropped.
#[derive(Clone, Debug)]
pub struct WireChild {
    /// `apiVersion` and `kind`, when both are there.
    pub types: Option<TypeMeta>,
    /// The metadata, with only the operator's claim on `spec.replicas` of
    /// its managed fields.
    pub metadata: ObjectMeta,
    /// The object as JSON: `types`, `metadata` and every other field as read.
    pub text: Arc<str>,
}

impl WireChild {
    /// The whole object, parsed from its text (its types and metadata alone,
    /// were the text, which a [`WireChild`] wrote, not to parse).
    pub fn object(&self) -> DynamicObject {
        serde_json::from_str::<WireObject>(&self.text).map_or_else(
            |_| DynamicObject {
                types: self.types.clone(),
                metadata: self.metadata.clone(),
                data: Value::Null,
            },
            |object| object.0,
        )
    }
}

impl<'de> Deserialize<'de> for WireChild {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ChildVisitor)
    }
}

struct ChildVisitor;

impl<'de> Visitor<'de> for ChildVisitor {
    type Value = WireChild;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WireChild, A::Error> {
        let Parts {
            types,
            metadata,
            rest: RestText(rest),
        } = Parts::<Vec<WireEntry>, RestText>::read(map)?;
        let metadata = metadata.map(slim_meta).unwrap_or_default();
        // Laid out as `DynamicObject` writes itself: types, metadata, the rest.
        let mut text = Vec::with_capacity(rest.len() + 512);
        text.push(b'{');
        if let Some(types) = &types {
            text.extend_from_slice(b"\"apiVersion\":");
            serde_json::to_writer(&mut text, &types.api_version).map_err(de::Error::custom)?;
            text.extend_from_slice(b",\"kind\":");
            serde_json::to_writer(&mut text, &types.kind).map_err(de::Error::custom)?;
            text.push(b',');
        }
        text.extend_from_slice(b"\"metadata\":");
        serde_json::to_writer(&mut text, &metadata).map_err(de::Error::custom)?;
        text.extend_from_slice(&rest);
        text.push(b'}');
        let text = String::from_utf8(text).map_err(de::Error::custom)?;
        Ok(WireChild {
            types,
            metadata,
            text: Arc::from(text),
        })
    }
}

/// The fields of an object but apiVersion, kind and metadata, as JSON text:
/// `,"field":value` for each, copied token by token.
#[derive(Default)]
struct RestText(Vec<u8>);

impl Rest for RestText {
    fn add<'de, A: MapAccess<'de>>(&mut self, key: String, map: &mut A) -> Result<(), A::Error> {
        self.0.push(b',');
        serde_json::to_writer(&mut self.0, &key).map_err(de::Error::custom)?;
        self.0.push(b':');
        map.next_value_seed(Transcode(&mut self.0))
    }
}

/// Writes the value it is given as JSON onto the end of a buffer, token by
/// token, whatever deserializer it comes from (a list's items come buffered
/// by serde, a watch event's straight from the text).
struct Transcode<'a>(&'a mut Vec<u8>);

impl<'de> de::DeserializeSeed<'de> for Transcode<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let mut writer = serde_json::Serializer::new(self.0);
        serde_transcode::transcode(deserializer, &mut writer).map_err(de::Error::custom)
    }
}

impl Resource for WireChild {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::group(dt)
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::version(dt)
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::kind(dt)
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::api_version(dt)
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// An object's top level as read: apiVersion and kind (when both are
/// there), the metadata (with its `managedFields` read as `M`), and every
/// other field as `R` keeps them.
pub(crate) struct Parts<M, R = Map<String, Value>> {
    pub(crate) types: Option<TypeMeta>,
    pub(crate) metadata: Option<WireMeta<M>>,
    pub(crate) rest: R,
}

/// Where [`Parts`] puts the fields it does not read apart.
pub(crate) trait Rest: Default {
    /// Take the value of field `key`, next in `map`.
    fn add<'de, A: MapAccess<'de>>(&mut self, key: String, map: &mut A) -> Result<(), A::Error>;
}

impl Rest for Map<String, Value> {
    fn add<'de, A: MapAccess<'de>>(&mut self, key: String, map: &mut A) -> Result<(), A::Error> {
        self.insert(key, map.next_value()?);
        Ok(())
    }
}

impl<'de, M: Deserialize<'de>, R: Rest> Parts<M, R> {
    /// Read the fields of `map`.
    pub(crate) fn read<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let (mut api_version, mut kind, mut metadata) = (None, None, None);
        let mut rest = R::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::ApiVersion => api_version = Some(map.next_value()?),
                Key::Kind => kind = Some(map.next_value()?),
                Key::Metadata => metadata = Some(map.next_value()?),
                Key::Other(key) => rest.add(key, &mut map)?,
            }
        }
        let types = match (api_version, kind) {
            (Some(api_version), Some(kind)) => Some(TypeMeta { api_version, kind }),
            _ => None,
        };
        Ok(Parts {
            types,
            metadata,
            rest,
        })
    }
}

/// A top-level key of an object: the three read apart, told without
/// copying them, and any other.
enum Key {
    ApiVersion,
    Kind,
    Metadata,
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "apiVersion" => Key::ApiVersion,
                    "kind" => Key::Kind,
                    "metadata" => Key::Metadata,
                    other => Key::Other(other.to_owned()),
                })
            }
            fn visit_string<E: de::Error>(self, key: String) -> Result<Key, E> {
                match key.as_str() {
                    "apiVersion" | "kind" | "metadata" => self.visit_str(&key),
                    _ => Ok(Key::Other(key)),
                }
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// How the watches cut children down before this reader, after kube's
    /// `DynamicObject` had read them: kept as the reference the reader must
    /// agree with.
    fn slim(object: &mut DynamicObject) {
        let Some(entries) = object.metadata.managed_fields.take() else {
            return;
        };
        let kept: Vec<_> = entries
            .into_iter()
            .filter(|entry| {
                entry.manager.as_deref() == Some(FIELD_MANAGER)
                    && entry.operation.as_deref() == Some("Apply")
            })
            .filter_map(|mut entry| {
                let owns = entry
                    .fields_v1
                    .as_ref()
                    .and_then(|fields| fields.0.pointer("/f:spec/f:replicas"))
                    .is_some();
                if !owns {
                    return None;
                }
                entry.fields_v1 = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                    serde_json::json!({"f:spec": {"f:replicas": {}}}),
                ));
                entry.time = None;
                Some(entry)
            })
            .collect();
        if !kept.is_empty() {
            object.metadata.managed_fields = Some(kept);
        }
    }

    /// What the watch held before: kube's own reading, then slimmed.
    fn as_before(text: &str) -> Value {
        let mut object: DynamicObject = serde_json::from_str(text).expect("kube reads it");
        slim(&mut object);
        serde_json::to_value(&object).expect("serialises")
    }

    fn as_now(text: &str) -> Value {
        let object: WireObject = serde_json::from_str(text).expect("wire reads it");
        serde_json::to_value(&object.0).expect("serialises")
    }

    fn deployment(managed_fields: Value) -> String {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "shop", "namespace": "demo", "uid": "u-1", "resourceVersion": "42",
                "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
                "annotations": {"portfolio.dev/desired-hash": "abc"},
                "ownerReferences": [{"apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
                    "name": "shop", "uid": "app-1", "controller": true, "blockOwnerDeletion": true}],
                "finalizers": ["x/y"],
                "managedFields": managed_fields,
            },
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "i"}]}}},
            "status": {"observedGeneration": 3, "readyReplicas": 2},
        })
        .to_string()
    }

    #[test]
    fn an_object_reads_as_kube_reads_it_then_slims_it() {
        let entry = |manager: &str, operation: &str, fields: Value| {
            json!({"manager": manager, "operation": operation, "apiVersion": "apps/v1",
                   "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields})
        };
        let replicas = json!({"f:metadata": {"f:labels": {".": {}}},
                              "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}});
        let template = json!({"f:spec": {"f:template": {}}});
        for fields in [
            json!([entry(FIELD_MANAGER, "Apply", replicas.clone())]),
            json!([entry(FIELD_MANAGER, "Apply", template.clone())]),
            json!([
                entry("kubectl", "Apply", replicas.clone()),
                entry(FIELD_MANAGER, "Update", replicas.clone())
            ]),
            json!([
                entry("kube-controller-manager", "Update", json!({"f:status": {}})),
                entry(FIELD_MANAGER, "Apply", replicas.clone())
            ]),
            json!([]),
            Value::Null,
        ] {
            let text = deployment(fields.clone());
            assert_eq!(as_now(&text), as_before(&text), "managedFields {fields}");
        }
        let bare = json!({"metadata": {"name": "x"}, "data": {"a": "b"}}).to_string();
        assert_eq!(as_now(&bare), as_before(&bare), "no apiVersion nor kind");
        let bookmark = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "resourceVersion": "9", "annotations": {"k8s.io/initial-events-end": "true"}}})
        .to_string();
        assert_eq!(as_now(&bookmark), as_before(&bookmark), "a bookmark");
        let no_meta = json!({"apiVersion": "v1", "kind": "ConfigMap"}).to_string();
        assert_eq!(as_now(&no_meta), as_before(&no_meta), "no metadata");
    }

    /// What the child caches keep, parsed back as a reconcile reads it.
    fn as_child(text: &str) -> Value {
        let child: WireChild = serde_json::from_str(text).expect("wire reads it");
        let read: Value = serde_json::from_str(&child.text).expect("its text is JSON");
        let object = child.object();
        assert_eq!(child.metadata, object.metadata, "the metadata it carries");
        assert_eq!(child.types, object.types, "the types it carries");
        let object = serde_json::to_value(&object).expect("serialises");
        assert_eq!(read, object, "its text is the object");
        object
    }

    #[test]
    fn a_child_is_kept_as_the_text_of_the_object_the_wire_reader_reads() {
        let replicas = json!([{"manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:data": {}}}]);
        let odd = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "odd", "namespace": "demo",
                "annotations": {"quote": "\"\\\u{1}\n", "ünï": "cødé 🙂"}},
            "data": {"k": "v"},
            "numbers": [0, -1, 1.5, -2.25e-8, 18446744073709551615u64, -9223372036854775808i64],
            "nested": {"a": [[], {}, [null, true, false]], "": ""},
        });
        for text in [
            deployment(replicas),
            deployment(Value::Null),
            odd.to_string(),
            // Fields before the metadata, and no types.
            r#"{"status":{"x":1},"metadata":{"name":"late"},"spec":{}}"#.to_owned(),
            json!({"apiVersion": "v1", "metadata": {"name": "half"}}).to_string(),
            json!({"apiVersion": "v1", "kind": "ConfigMap"}).to_string(),
        ] {
            assert_eq!(as_child(&text), as_now(&text), "{text}");
            assert_eq!(as_child(&text), as_before(&text), "{text}");
        }
    }

    #[test]
    fn a_listed_child_reads_as_a_watched_one() {
        // serde buffers a list's items before reading them (kube's list type
        // has a flattened field): the reader must not depend on the text.
        let item = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "demo", "resourceVersion": "5"},
            "data": {"k": "v", "n": "ü\u{7}"}, "binaryData": {}});
        let list = json!({"apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": "9"}, "items": [item]});
        let listed: kube::core::ObjectList<WireChild> =
            serde_json::from_value(list).expect("a list");
        let [child] = listed.items.as_slice() else {
            panic!("one item");
        };
        let watched: WireChild = serde_json::from_str(&item.to_string()).expect("an event");
        assert_eq!(child.object(), watched.object());
        assert_eq!(
            serde_json::to_value(child.object()).expect("serialises"),
            item
        );
    }

    #[test]
    fn odd_managed_fields_claim_nothing_and_fail_nothing() {
        for fields_v1 in [
            json!("text"),
            json!(7),
            json!([1, 2]),
            json!(null),
            json!({"f:spec": 3}),
            json!({"f:spec": {"f:replicas": null}}),
        ] {
            let text = deployment(json!([{"manager": FIELD_MANAGER, "operation": "Apply",
                                          "fieldsV1": fields_v1}]));
            let object: WireObject = serde_json::from_str(&text).expect("reads");
            let claims = object.0.metadata.managed_fields.unwrap_or_default().len();
            // `f:replicas: null` is a key all the same, as kube's slim sees it.
            let expected = usize::from(fields_v1 == json!({"f:spec": {"f:replicas": null}}));
            assert_eq!(claims, expected, "fieldsV1 {fields_v1}");
        }
    }

    #[test]
    fn what_kube_refuses_is_refused() {
        for text in [
            json!({"metadata": "shop"}).to_string(),
            json!({"metadata": {"name": 3}}).to_string(),
            json!({"metadata": {"managedFields": {"manager": "x"}}}).to_string(),
            json!([1]).to_string(),
            "{\"metadata\": {".to_owned(),
        ] {
            assert!(
                serde_json::from_str::<DynamicObject>(&text).is_err(),
                "kube: {text}"
            );
            assert!(
                serde_json::from_str::<WireObject>(&text).is_err(),
                "wire: {text}"
            );
            assert!(
                serde_json::from_str::<WireChild>(&text).is_err(),
                "wire child: {text}"
            );
        }
    }

    #[test]
    fn an_app_keeps_no_managed_fields_and_types_as_before() {
        let text = json!({
            "metadata": {"name": "shop", "labels": {"a": "b"}, "managedFields": [{"manager": "m",
                "fieldsV1": {"f:spec": {}}}]},
        })
        .to_string();
        let meta: MetaWithoutFields = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| serde_json::from_value(v["metadata"].clone()).ok())
            .expect("reads");
        let meta = meta.into_object_meta();
        assert_eq!(meta.name.as_deref(), Some("shop"));
        assert!(meta.managed_fields.is_none());
    }
}
