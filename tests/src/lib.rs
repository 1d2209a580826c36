//! Whole-system tests of axum-durable live in `tests/tests/`; this library holds their helpers.
//!
//! The harness starts the real `example-signup` binary as a child process (built once per
//! test run by [`binary::example_signup`]), on a fresh database per test ([`TestDb`]), talks
//! to it over HTTP ([`http`]), inspects its tables directly ([`inspect`]), and kills or
//! terminates it with real signals ([`Server`]). [`chaos`] is the failure-mode runner built
//! on them; [`rollout`] holds the traffic, streams and table reads of the rolling-deploy test,
//! which runs the two-release `example-rollout` instead ([`Program::rollout`]).
//! [`chromedriver`] runs headless Chromium for the dashboard's browser test.

pub mod backend;
pub mod binary;
pub mod chaos;
pub mod chromedriver;
pub mod http;
pub mod inspect;
pub mod rollout;
pub mod server;
pub mod wait;

pub use backend::{Backend, TestDb};
pub use http::{Burst, BurstReport, Kind, Outcome, Request};
pub use inspect::{Inspector, Snapshot, TaskRow};
pub use server::{Program, Server, Termination};
pub use wait::wait_until;
