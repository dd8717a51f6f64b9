//! An embedded, in-memory Kubernetes API server for tests and local runs.
