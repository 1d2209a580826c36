//! Attributes on the function reach the generated items: `#[cfg]` removes them with the
//! function, `#[deprecated]` marks the struct without warning inside the generated code, lint
//! levels (`allow`, `expect`) cover them, whatever side of `#[task]` the attribute is on.
#![deny(warnings, missing_docs, unused_qualifications)]

use durable_core::{Registry, Task};
use durable_macros::task;

#[derive(Clone)]
struct AppState;

/// Never compiled: no struct, impl or constructor may be left behind (the items below of
/// the same names would clash with them).
#[task]
#[cfg(any())]
async fn cfg_after(_state: AppState, n: u32) {
    let _ = n;
}

/// Same, with `#[cfg]` written before `#[task]`.
#[cfg(any())]
#[task]
async fn cfg_before(_state: AppState, n: u32) {
    let _ = n;
}

#[cfg(not(any()))]
#[allow(non_camel_case_types, dead_code)]
struct cfg_after;

#[cfg(not(any()))]
#[allow(non_camel_case_types, dead_code)]
struct cfg_before;

/// Compiled: a true `#[cfg]` keeps everything.
#[task]
#[cfg(all())]
async fn cfg_kept(_state: AppState, n: u32) {
    let _ = n;
}

/// `#[cfg_attr]` is applied to the generated items too.
#[task]
#[cfg_attr(all(), deprecated = "use `cfg_kept`")]
async fn deprecated_by_cfg_attr(_state: AppState) {}

/// Deprecated: the generated impls call the function and name the struct, without warning.
#[task(name = "old.task")]
#[deprecated(note = "use `cfg_kept`")]
async fn old_task(_state: AppState, n: u32) {
    let _ = n;
}

/// Also deprecated, the attribute before `#[task]`.
#[deprecated]
#[task]
async fn old_too(_state: &AppState) {}

/// A non-snake-case argument is a non-snake-case field: the `allow` covers both.
#[task]
#[allow(non_snake_case)]
async fn legacy_names(_state: AppState, userID: i64) {
    let _ = userID;
}

/// `#[expect]`: fulfilled by the function's parameter; the field and the constructor's
/// parameter of the same name do not warn either.
#[task]
#[expect(non_snake_case, reason = "the name of the stored field")]
async fn expected_names(_state: AppState, orderID: i64) {
    let _ = orderID;
}

fn main() {
    let registry = Registry::new().register::<cfg_kept>(AppState);
    #[allow(deprecated)]
    let registry = registry
        .register::<old_task>(AppState)
        .register::<old_too>(AppState)
        .register::<deprecated_by_cfg_attr>(AppState);
    let registry = registry
        .register::<legacy_names>(AppState)
        .register::<expected_names>(AppState);
    assert_eq!(registry.names().len(), 6);

    // Every use of the deprecated struct (its fields included) is a use of the task.
    #[allow(deprecated)]
    {
        let task = old_task::task(3);
        assert_eq!(task.n, 3);
        assert_eq!(<old_task as Task>::NAME, "old.task");
    }
    let task = legacy_names::task(7);
    assert_eq!(task.userID, 7);
    let task = expected_names::task(8);
    assert_eq!(task.orderID, 8);
}
