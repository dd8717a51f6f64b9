//! Built-in migration strategy: runs flyway as Kubernetes Jobs.
