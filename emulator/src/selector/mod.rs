//! Label selectors (the full string syntax) and field selectors, parsed and matched.

mod field;
mod label;

pub use crate::validation::{validate_label_key, validate_label_value};
pub use field::{FieldSelector, supported_fields};
pub use label::LabelSelector;

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn full_label_syntax() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("n>3,n<6", true),
            ("n>5", false),
            ("app=web,tier=back", false),
            ("app in (x),tier", false),
        ] {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&o), want, "{sel}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_errors() {
        for bad in [
            "app in web",
            "app in ()",
            "=x",
            "a b",
            "app=(",
            "Bad Key=1",
            "a>b",
            "!",
            "a in (x",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let s = FieldSelector::parse(
            "metadata.name=a,metadata.namespace!=x",
            &supported_fields("", "configmaps"),
        )
        .unwrap();
        assert!(s.matches(&o));
        assert_eq!(s.pinned_name(), Some("a"));
        assert!(FieldSelector::parse("spec.foo=1", &supported_fields("", "configmaps")).is_err());
        assert!(FieldSelector::parse("nonsense", &supported_fields("", "configmaps")).is_err());
    }

    #[test]
    fn selector_objects() {
        let s = LabelSelector::from_object(&json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}))
        .unwrap();
        assert!(s.matches(&obj(json!({"app": "web", "tier": "front"}))));
        assert_eq!(s.to_string_form(), "app=web,tier in (front)");
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,64}") {
            let _ = LabelSelector::parse(&s).map(|sel| sel.matches(&obj(json!({"a": "b"}))));
            let _ = FieldSelector::parse(&s, &supported_fields("", "pods")).map(|f| f.matches(&obj(json!({}))));
        }

        #[test]
        fn canonical_form_round_trips(keys in proptest::collection::vec("[a-z]{1,5}", 1..4), vals in proptest::collection::vec("[a-z0-9]{0,5}", 1..4)) {
            let text: Vec<String> = keys.iter().zip(vals.iter()).map(|(k, v)| format!("{k}={v}")).collect();
            let sel = LabelSelector::parse(&text.join(",")).unwrap();
            let again = LabelSelector::parse(&sel.to_string_form()).unwrap();
            proptest::prop_assert_eq!(sel.to_string_form(), again.to_string_form());
        }
    }
}
