//! [`Client`]: the handle that enqueues tasks.
//!
//! A client checks and serializes each task into a row (`row`) and hands it to its
//! group-commit writer (`crate::writer`), which stores it and answers once committed. A
//! [`Batch`] stores tasks of several types in one transaction. The client of a
//! [`Runtime`](crate::Runtime) also wakes that runtime and tracks its volatile futures
//! (`link`).

mod batch;
mod builder;
mod handle;
mod idempotency;
mod link;
mod options;
mod row;
mod volatile;
mod wait;

pub use batch::Batch;
pub use builder::{
    ClientBuilder, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_ROWS,
};
pub use handle::Client;
pub use options::EnqueueOptions;
pub use row::MAX_NAME_BYTES;

pub(crate) use link::{Cancels, Link, Wake};
