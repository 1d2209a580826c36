//! The bound on what waits for the writer. When the database hangs, every request that
//! enqueues waits for it, holding its rows in memory; without a bound they pile up until the
//! process runs out of memory. Past the bound a request is refused at once
//! ([`Error::Overloaded`]), so the service sheds load instead.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};
use crate::store::NewTask;

/// Bytes counted per row besides its payload and names: id, times, numbers, bookkeeping.
const ROW_OVERHEAD: usize = 128;

/// Approximate memory a row holds while it waits.
pub(crate) fn row_bytes(row: &NewTask) -> usize {
    row.payload.len()
        + row.name.len()
        + row.queue.len()
        + row.unique.as_ref().map_or(0, |u| u.key.len())
        + ROW_OVERHEAD
}

/// Rows and bytes accepted and not yet answered.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    queued: Mutex<Queued>,
    max_rows: usize,
    max_bytes: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Queued {
    rows: usize,
    bytes: usize,
}

impl WriteQueue {
    pub(crate) fn new(max_rows: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            queued: Mutex::new(Queued::default()),
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
        })
    }

    fn queued(&self) -> MutexGuard<'_, Queued> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes room for `rows`, or refuses when the queue is already full. A request is
    /// admitted whole while there is any room left, so a batch larger than the bound is
    /// not refused forever: the queue can exceed its bound by one request at most.
    pub(crate) fn admit(self: &Arc<Self>, rows: &[NewTask]) -> Result<Ticket> {
        let bytes = rows.iter().map(row_bytes).sum();
        let mut queued = self.queued();
        if queued.rows >= self.max_rows || queued.bytes >= self.max_bytes {
            return Err(Error::Overloaded {
                queued_rows: queued.rows,
                queued_bytes: queued.bytes,
            });
        }
        queued.rows += rows.len();
        queued.bytes += bytes;
        Ok(Ticket {
            queue: Arc::clone(self),
            rows: rows.len(),
            bytes,
        })
    }

    pub(crate) fn rows(&self) -> usize {
        self.queued().rows
    }

    pub(crate) fn bytes(&self) -> usize {
        self.queued().bytes
    }

    pub(crate) fn max_rows(&self) -> usize {
        self.max_rows
    }

    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

/// Room held in the queue by one request until its answer is sent (dropped).
#[derive(Debug)]
pub(crate) struct Ticket {
    queue: Arc<WriteQueue>,
    rows: usize,
    bytes: usize,
}

impl Ticket {
    /// The bytes this request counts for.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut queued = self.queue.queued();
        queued.rows -= self.rows;
        queued.bytes -= self.bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<NewTask> {
        (0..n).map(|_| NewTask::new("t", "{}")).collect()
    }

    #[test]
    fn refuses_once_full_and_frees_on_drop() {
        let queue = WriteQueue::new(3, usize::MAX);
        let a = queue.admit(&rows(2)).expect("room");
        // Room left: admitted whole, over the bound.
        let b = queue.admit(&rows(5)).expect("room left");
        assert_eq!(queue.rows(), 7);
        let e = queue.admit(&rows(1)).expect_err("full");
        assert!(
            matches!(e, Error::Overloaded { queued_rows: 7, .. }),
            "{e:?}"
        );
        drop(b);
        assert_eq!(queue.rows(), 2);
        let c = queue.admit(&rows(1)).expect("room again");
        drop((a, c));
        assert_eq!((queue.rows(), queue.bytes()), (0, 0));
    }

    #[test]
    fn bytes_bound_too() {
        let queue = WriteQueue::new(usize::MAX, 10);
        let held = queue.admit(&rows(1)).expect("room");
        assert!(held.bytes() > 10);
        assert!(queue.admit(&rows(1)).is_err());
    }
}
