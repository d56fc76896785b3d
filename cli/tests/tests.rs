//! The `rbuild` binary's integration tests, one module per command family.

// A test's helpers fail the test by panicking; that is what unwrap is for here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod build;
mod confinement;
mod containers;
mod crash;
mod explain;
mod habits;
mod images;
mod parse;
mod proxy;
mod registry;
mod run;
mod store;
mod token;
mod util;
