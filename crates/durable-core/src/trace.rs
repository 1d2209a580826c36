//! Linking a task's attempts to the request that enqueued it, through the W3C Trace Context
//! `traceparent` (`00-<trace id>-<parent span id>-<flags>`).
//!
//! A task carries the `traceparent` that was current when it was prepared
//! ([`with_trace_parent`]; `axum_durable::DurableLayer` sets the request's header) and keeps
//! it in its row, so the attempt that runs it, on whatever instance, records it on its
//! `durable.attempt` span (field `trace_parent`): a tracing pipeline can join the attempt to
//! the request's trace by the trace id in it.

use std::cell::RefCell;
use std::sync::Arc;

use crate::store::ClaimedTask;

thread_local! {
    static CURRENT: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Runs `f` with `trace_parent` as the enqueuing context: every task prepared inside it on
/// this thread (spawned or enqueued through a [`Client`](crate::Client)) carries it. A value
/// that is not a valid `traceparent` is ignored; `None` clears the context inside `f`.
///
/// A future that prepares tasks across `.await` points must be run with it on each poll
/// (as `DurableLayer` does for the request's handler).
///
/// # Examples
///
/// ```
/// use durable_core::trace::{current_trace_parent, with_trace_parent};
///
/// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// with_trace_parent(Some(tp), || {
///     assert_eq!(current_trace_parent().as_deref(), Some(tp));
/// });
/// assert_eq!(current_trace_parent(), None);
/// ```
pub fn with_trace_parent<R>(trace_parent: Option<&str>, f: impl FnOnce() -> R) -> R {
    /// Puts the outer context back, even if `f` panics.
    struct Restore(Option<Arc<str>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = outer);
        }
    }
    let value = trace_parent
        .filter(|tp| is_valid_trace_parent(tp))
        .map(Arc::from);
    let _restore = Restore(CURRENT.with(|c| c.replace(value)));
    f()
}

/// The `traceparent` tasks prepared here now would carry. With the `opentelemetry` feature,
/// the current span's OpenTelemetry context comes first (it names the handler's own span as
/// the parent, where a request header names the caller's); then [`with_trace_parent`]'s.
pub fn current_trace_parent() -> Option<String> {
    #[cfg(feature = "opentelemetry")]
    if let Some(tp) = otel::current() {
        return Some(tp);
    }
    CURRENT.with(|c| c.borrow().as_deref().map(str::to_owned))
}

/// Whether `value` is a `traceparent` of the W3C Trace Context format: version, a 32-digit
/// trace id and a 16-digit parent id that are not all zeros, flags; lowercase hex, joined
/// by `-`. Versions after `00` may add fields after the flags.
///
/// ```
/// use durable_core::trace::is_valid_trace_parent;
/// assert!(is_valid_trace_parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
/// assert!(!is_valid_trace_parent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
/// assert!(!is_valid_trace_parent("not a traceparent"));
/// ```
pub fn is_valid_trace_parent(value: &str) -> bool {
    /// Longest value kept: the format's 55 bytes, with room for a later version's fields.
    const MAX_LEN: usize = 256;
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if value.len() > MAX_LEN {
        return false;
    }
    let mut parts = value.split('-');
    let (Some(version), Some(trace), Some(parent), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let more = parts.next().is_some();
    hex(version, 2)
        && version != "ff"
        && !(version == "00" && more)
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2)
}

/// The trace id of a valid `traceparent`.
///
/// ```
/// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// assert_eq!(durable_core::trace::trace_id(tp), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
/// ```
pub fn trace_id(trace_parent: &str) -> Option<&str> {
    if !is_valid_trace_parent(trace_parent) {
        return None;
    }
    trace_parent.split('-').nth(1)
}

/// The span one attempt runs in: `durable.attempt`, with the task's id, type, queue and
/// attempt number, the enqueuing request's `trace_parent` if it had one, and the attempt's
/// `outcome` once recorded.
pub(crate) fn attempt_span(task: &ClaimedTask) -> tracing::Span {
    let span = tracing::info_span!(
        "durable.attempt",
        task.id = %task.id,
        task.name = %task.name,
        queue = %task.queue,
        attempt = task.attempt,
        trace_parent = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    if let Some(tp) = &task.trace_parent {
        span.record("trace_parent", tp.as_str());
        #[cfg(feature = "opentelemetry")]
        otel::set_parent(&span, tp);
    }
    span
}

/// The OpenTelemetry side (`tracing-opentelemetry`): reading the current span's context,
/// and parenting an attempt's span on a stored one.
#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    /// The current span's OpenTelemetry context as a `traceparent`, when it has a valid one
    /// (none without a `tracing-opentelemetry` layer).
    pub(super) fn current() -> Option<String> {
        let cx = tracing::Span::current().context();
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| {
            format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            )
        })
    }

    /// Makes the span of the stored `traceparent` the remote parent of `span`.
    pub(super) fn set_parent(span: &tracing::Span, trace_parent: &str) {
        let mut parts = trace_parent.split('-').skip(1);
        let (Some(trace), Some(parent), Some(flags)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let (Ok(trace), Ok(parent), Ok(flags)) = (
            TraceId::from_hex(trace),
            SpanId::from_hex(parent),
            u8::from_str_radix(flags, 16),
        ) else {
            return;
        };
        let remote = SpanContext::new(
            trace,
            parent,
            TraceFlags::new(flags),
            true,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(remote);
        if let Err(error) = span.set_parent(cx) {
            // No OpenTelemetry layer, or the span is filtered out: nothing to link.
            tracing::trace!(%error, "attempt span not linked to its OpenTelemetry parent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_nests_and_is_restored() {
        let a = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let b = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        with_trace_parent(Some(a), || {
            with_trace_parent(Some(b), || {
                assert_eq!(current_trace_parent().as_deref(), Some(b));
            });
            assert_eq!(current_trace_parent().as_deref(), Some(a));
            with_trace_parent(Some("garbage"), || {
                assert_eq!(current_trace_parent(), None);
            });
        });
        assert_eq!(current_trace_parent(), None);
    }

    #[test]
    fn format_is_checked() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_valid_trace_parent(ok));
        assert!(!is_valid_trace_parent(&ok.to_uppercase()));
        assert!(!is_valid_trace_parent(&format!("{ok}-extra")));
        assert!(is_valid_trace_parent(&format!("01{}-extra", &ok[2..])));
        assert!(!is_valid_trace_parent(&format!("ff{}", &ok[2..])));
        assert!(!is_valid_trace_parent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
        ));
        assert!(!is_valid_trace_parent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
        ));
    }
}
