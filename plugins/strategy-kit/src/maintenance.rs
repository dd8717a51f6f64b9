//! When a plan carries its tool's maintenance step (`repair`, `release-locks`).
//!
//! A maintenance step rewrites the tool's own bookkeeping, so it is in the
//! plan only when someone allowed it, and never in a dry run:
//!
//! - the platform team, for every migration, with the plugin's setting
//!   (`allowRepair` for Flyway, `allowReleaseLocks` for Liquibase); or
//! - a person, for one migration, with the annotation
//!   `portfolio.dev/allow-maintenance: <key>` (several keys separated by
//!   commas) on the DatabaseMigration, after checking that nothing else is
//!   using the tool against the database.
//!
//! The plan is a pure function of the object, so adding the annotation
//! changes the plan (and its hash: a `Manual` migration needs a new approval
//! that covers the maintenance step). `interpret` answers `lock-held` only
//! when the plan carries the step that can clear it; otherwise the same
//! condition is a failure whose message says how to allow the step.

use alloc::string::String;

/// Annotation with which a person allows a maintenance step for one migration.
pub const ANNOTATION: &str = "portfolio.dev/allow-maintenance";

/// Whether the maintenance step `key` belongs in the plan.
pub fn allowed(key: &str, setting: bool, dry_run: bool, annotations: &[(String, String)]) -> bool {
    !dry_run && (setting || requested(key, annotations))
}

/// Whether the annotation asks for `key`.
pub fn requested(key: &str, annotations: &[(String, String)]) -> bool {
    annotations
        .iter()
        .filter(|(name, _)| name == ANNOTATION)
        .any(|(_, value)| value.split(',').any(|item| item.trim() == key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotated(value: &str) -> Vec<(String, String)> {
        vec![
            ("other".to_owned(), "repair".to_owned()),
            (ANNOTATION.to_owned(), value.to_owned()),
        ]
    }

    #[test]
    fn the_setting_or_the_annotation_allows_it_but_never_in_a_dry_run() {
        assert!(allowed("repair", true, false, &[]));
        assert!(!allowed("repair", false, false, &[]));
        assert!(!allowed("repair", true, true, &[]));
        assert!(allowed("repair", false, false, &annotated("repair")));
        assert!(allowed(
            "release-locks",
            false,
            false,
            &annotated("repair, release-locks")
        ));
        assert!(!allowed("repair", false, true, &annotated("repair")));
        assert!(!allowed("repair", false, false, &annotated("repairs")));
        assert!(!allowed(
            "repair",
            false,
            false,
            &[("other".into(), "repair".into())]
        ));
    }
}
