//! Field sets (managedFields' `fieldsV1`) and the structural merge server-side apply is built
//! on.

mod changes;
mod merge;
mod removal;
mod set;
mod shape;

pub use changes::{Zero, all_fields, changed_fields, fields_of};
pub use merge::{find_duplicates, merge};
pub use removal::{remove_fields, widen_to_structs};
pub use set::{FieldSet, PathElement};
pub use shape::Shape;

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const B: Shape = Shape { schema: None };

    #[test]
    fn fields_v1_round_trip() {
        let obj = json!({"metadata": {"labels": {"a": "b"}, "finalizers": ["x"]},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let fs = fields_of(&obj, B, None);
        let v1 = fs.to_fields_v1();
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:finalizers": {"v:\"x\"": {}}, "f:labels": {"f:a": {}}},
                "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&v1), Some(fs));
    }

    #[test]
    fn merge_and_remove() {
        let live = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}], "args": ["x"]}});
        let applied = json!({"spec": {"containers": [{"name": "b", "image": "3"}], "args": ["y"]}});
        let m = merge(&live, &applied, B);
        assert_eq!(m["spec"]["containers"][1]["image"], "3");
        assert_eq!(m["spec"]["containers"][0]["image"], "1");
        assert_eq!(m["spec"]["args"], json!(["y"]));
        let mut m2 = m.clone();
        let drop = fields_of(&json!({"spec": {"containers": [{"name": "a"}]}}), B, None);
        let only_item = FieldSet::from_fields_v1(
            &json!({"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {}}}}),
        )
        .unwrap();
        assert!(!drop.intersection(&only_item).is_empty());
        remove_fields(&mut m2, &only_item);
        assert_eq!(m2["spec"]["containers"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn duplicates_are_found() {
        let v = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "env": [{"name": "X"}, {"name": "X"}]}]}});
        assert_eq!(
            find_duplicates(&v, B).as_deref(),
            Some(".spec.containers[].env: duplicate entries for key [name=\"X\"]")
        );
        assert!(find_duplicates(&json!({"spec": {"args": ["a", "a"]}}), B).is_none());
        assert!(find_duplicates(&json!({"metadata": {"finalizers": ["a", "a"]}}), B).is_some());
    }

    #[test]
    fn changes_are_leaf_precise() {
        let old = json!({"a": {"b": 1, "c": 2}});
        let new = json!({"a": {"b": 1, "c": 3, "d": 4}});
        assert_eq!(
            changed_fields(Some(&old), &new, B, Zero::default()).paths(),
            vec![".a.c", ".a.d"]
        );
    }

    #[test]
    fn added_containers_are_members_unless_the_zero_value_has_them() {
        // A custom resource's zero value is empty: every map it adds is added itself.
        let cm = json!({"data": {"a": "1"}, "metadata": {"finalizers": ["x"]}});
        assert_eq!(
            changed_fields(None, &cm, B, Zero::default()).paths(),
            vec![
                ".data",
                ".data.a",
                ".metadata.finalizers",
                ".metadata.finalizers[=\"x\"]"
            ]
        );
        // A built-in kind's structs exist in its Go zero value, and so do a pod spec's
        // containers (as null); its maps do not.
        let schema = crate::builtin_schema::schema_for("apps", "Deployment").unwrap();
        let zero = Zero {
            builtin: Some(&schema),
        };
        let d = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"replicas": 1,
            "template": {"spec": {"containers": [{"name": "c", "env": [{"name": "E"}]}]}}}});
        let paths = changed_fields(None, &d, B, zero).paths();
        assert!(paths.contains(&".metadata.labels".to_string()), "{paths:?}");
        for absent in [
            ".metadata",
            ".spec",
            ".spec.template",
            ".spec.template.spec",
            ".spec.template.spec.containers",
        ] {
            assert!(!paths.contains(&absent.to_string()), "{absent}: {paths:?}");
        }
        assert!(paths.iter().any(|p| p.ends_with(".env")), "{paths:?}");
        // An update owns only what it changed or added.
        let old = json!({"data": {"a": "1"}});
        let new = json!({"data": {"a": "2", "b": "3"}, "more": {"x": 1}});
        assert_eq!(
            changed_fields(Some(&old), &new, B, Zero::default()).paths(),
            vec![".data.a", ".data.b", ".more", ".more.x"]
        );
    }

    #[test]
    fn configurations_own_map_entries_but_not_structs() {
        let schema = crate::schema::Schema::parse(
            &json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "byName": {"type": "object", "additionalProperties": {"type": "object",
                    "properties": {"v": {"type": "string"}}}}}}}}),
            "",
        )
        .unwrap();
        let shape = Shape {
            schema: Some(&schema),
        };
        let cfg = json!({"spec": {"byName": {"x": {"v": "1"}}}});
        assert_eq!(
            fields_of(&cfg, shape, Some(&schema)).paths(),
            vec![".spec.byName.x", ".spec.byName.x.v"]
        );
    }

    #[test]
    fn a_node_stays_while_anything_below_it_is_kept() {
        // Applied as a map entry before (a looser schema), as a struct's fields now.
        let before =
            FieldSet::from_fields_v1(&json!({"f:spec": {".": {}, "f:a": {}, "f:b": {}}})).unwrap();
        let now = FieldSet::from_fields_v1(&json!({"f:spec": {"f:a": {}}})).unwrap();
        let removed = before.difference(&now).keeping_ancestors_of(&now);
        assert_eq!(removed.paths(), vec![".spec.b"]);
        let mut obj = json!({"spec": {"a": 1, "b": 2}});
        remove_fields(&mut obj, &removed);
        assert_eq!(obj, json!({"spec": {"a": 1}}));
    }

    /// Random objects with built-in list types; `min` items in every list and map.
    fn arb_object_min(min: usize) -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ];
        let container = (
            prop::sample::select(vec!["a", "b", "c"]),
            "[x-z]{1,2}",
            prop::option::of("[a-c]"),
        )
            .prop_map(|(n, img, tag)| {
                let mut c = json!({"name": n, "image": img});
                if let Some(t) = tag {
                    c["env"] = json!([{"name": t, "value": "v"}]);
                }
                c
            });
        (
            prop::collection::vec(container, min..4),
            prop::collection::btree_set("[a-c]", min..3),
            prop::collection::btree_map("[a-c]", scalar.clone(), min..3),
            prop::collection::vec(scalar, min..3),
        )
            .prop_map(|(cs, fins, labels, args)| {
                let mut seen = std::collections::BTreeSet::new();
                let cs: Vec<Value> = cs
                    .into_iter()
                    .filter(|c| seen.insert(c["name"].to_string()))
                    .collect();
                json!({
                    "metadata": {"finalizers": fins.into_iter().collect::<Vec<_>>(), "labels": labels},
                    "spec": {"containers": cs, "args": args},
                })
            })
    }

    fn arb_object() -> impl proptest::strategy::Strategy<Value = Value> {
        arb_object_min(0)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { failure_persistence: None, ..Default::default() })]

        #[test]
        fn field_sets_round_trip_through_fields_v1(o in arb_object()) {
            let fs = fields_of(&o, B, None);
            proptest::prop_assert_eq!(FieldSet::from_fields_v1(&fs.to_fields_v1()), Some(fs));
        }

        #[test]
        fn merging_an_object_into_itself_changes_nothing(o in arb_object()) {
            let m = merge(&o, &o, B);
            proptest::prop_assert_eq!(&m, &o);
            proptest::prop_assert!(changed_fields(Some(&o), &m, B, Zero::default()).is_empty());
        }

        #[test]
        fn applied_fields_survive_a_merge(live in arb_object(), applied in arb_object_min(1)) {
            let m = merge(&live, &applied, B);
            // Everything the applier set is present with the applied value (an applied empty
            // map or list claims the field without removing others' entries, so the
            // configurations here have none).
            let set = fields_of(&applied, B, None);
            proptest::prop_assert!(changed_fields(Some(&m), &applied, B, Zero::default()).intersection(&set).is_empty());
        }

        #[test]
        fn set_algebra_laws(a in arb_object(), b in arb_object()) {
            let (x, y) = (fields_of(&a, B, None), fields_of(&b, B, None));
            proptest::prop_assert!(x.difference(&y).intersection(&y).is_empty());
            proptest::prop_assert_eq!(x.union(&y).intersection(&x), x.clone());
            proptest::prop_assert_eq!(x.intersection(&y), y.intersection(&x));
        }
    }
}
