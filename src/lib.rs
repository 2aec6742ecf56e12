//! Workspace-level examples, cross-crate tests and benches of coinfer; see the `crates/`
//! folder for the libraries and `coinfer-automl` for the facade users depend on.

#![forbid(unsafe_code)]
