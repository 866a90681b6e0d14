//! `cofre forget`: applies a retention policy per set and deletes the manifests of the
//! snapshots it does not keep (only manifests: `prune` frees their data).

pub mod policy;
