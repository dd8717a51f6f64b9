//! Built-in migration strategy: runs liquibase as Kubernetes Jobs.
