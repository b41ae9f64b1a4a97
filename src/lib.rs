//! The Node addon: napi-rs glue only. It turns JS options into a `clustr_io::Config`, parses the
//! shim's batched command buffer into routed commands, and turns replies and events into JS
//! values. No Redis logic lives here; that is `clustr-engine` (decisions) and `clustr-io` (I/O).

// Under `cargo test` the #[napi] registrations are not compiled, so their functions look unused.
#![cfg_attr(test, allow(dead_code))]

mod binding;
