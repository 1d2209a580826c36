//! Helpers of the rolling-deploy test (`tests/rollout.rs`), which runs the two-release
//! `example-rollout` service: steady traffic on `POST /work` over the instances in rotation
//! ([`traffic`]), a client holding a server-sent-event stream open on the instance being
//! stopped ([`stream`]), and reads of the service's tables ([`tables`]).

pub mod stream;
pub mod tables;
pub mod traffic;

pub use stream::{HeldStream, StreamEnd};
pub use tables::{CompletionRow, Tables, TaskRow};
pub use traffic::{Acked, Reply, Sent, Traffic, TrafficReport, TrafficSpec};
