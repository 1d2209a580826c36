//! # durable-macros
//!
//! The `#[task]` attribute of **axum-durable**: it turns an `async fn` into a durable task
//! (an implementation of `durable_core::Task`) without changing the function.
//!
//! Use it through `axum_durable::task` (or `durable_macros::task` with `durable-core`).
//!
//! ## Example
//!
//! ```no_run
//! use durable_core::{Registry, Runtime, TaskError};
//! use durable_macros::task;
//!
//! #[derive(Clone)]
//! struct AppState {/* pools, clients... */}
//!
//! #[derive(Debug)]
//! struct MailError(String);
//! impl std::fmt::Display for MailError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         f.write_str(&self.0)
//!     }
//! }
//!
//! /// Sends the welcome email. Still an ordinary function: callers and tests can `.await` it.
//! #[task]
//! async fn send_welcome_email(state: AppState, user_id: i64, email: String) -> Result<(), MailError> {
//!     let _ = (state, user_id, email); // any error is retried with backoff
//!     Ok(())
//! }
//!
//! /// Fails for good (no retry) on bad input, by returning `TaskError` directly.
//! #[task(name = "billing.charge", max_attempts = 5, timeout = "30s", queue = "billing")]
//! async fn charge(cx: durable_core::TaskContext<AppState>, cents: u64) -> Result<(), TaskError> {
//!     if cents == 0 {
//!         return Err(TaskError::permanent("nothing to charge"));
//!     }
//!     let _idempotency_key = cx.id(); // the task id, stable across retries
//!     Ok(())
//! }
//!
//! # async fn demo(store: durable_sqlx::sqlite::SqliteStore) -> durable_core::Result<()> {
//! let state = AppState {};
//! let registry = Registry::new()
//!     .register::<send_welcome_email>(state.clone())
//!     .register::<charge>(state);
//! let runtime = Runtime::builder(store, registry).start();
//!
//! // Before: tokio::spawn(send_welcome_email(state, 7, email));
//! let id = runtime
//!     .client()
//!     .enqueue(send_welcome_email::task(7, "ada@example.com".to_owned()))
//!     .await?;
//! // In an Axum handler: `durable.spawn(send_welcome_email::task(7, email))`.
//! # let _ = id; Ok(()) }
//! ```
//!
//! ## What `#[task]` generates
//!
//! For `#[task] pub async fn send_welcome_email(state: AppState, user_id: i64, email: String)`:
//!
//! - the function itself, unchanged (minus any `#[serde]` attributes on its parameters);
//! - `pub struct send_welcome_email { pub user_id: i64, pub email: String }`, named like the
//!   function (a struct lives in the type namespace, the function in the value namespace, so
//!   both coexist and `use path::send_welcome_email;` imports both). It derives
//!   `Serialize`/`Deserialize` and implements `Debug` (fields whose type is not `Debug` show
//!   as `..`);
//! - `send_welcome_email::task(user_id, email) -> send_welcome_email`, the constructor, and
//!   `send_welcome_email::NAME`, the stored name;
//! - `impl Task for send_welcome_email` with `NAME = "send_welcome_email"`,
//!   `type State = AppState`, `options()` from the attribute, and `run` calling the function.
//!
//! Everything has the function's visibility and generated docs, so the lints
//! `missing_docs`, `missing_debug_implementations` and `unreachable_pub` stay quiet.
//!
//! Attributes on the function, on either side of `#[task]`, reach the generated items:
//!
//! | on the function        | the struct, its `impl`s and `Task` implementation              |
//! |------------------------|----------------------------------------------------------------|
//! | `#[cfg(..)]`, `#[cfg_attr(..)]` | exist exactly when the function does                  |
//! | doc comments, `#[doc(..)]` | on the struct, followed by the generated paragraph         |
//! | `#[deprecated]`        | on the struct: spawning, registering or naming the task warns; the generated code itself does not |
//! | `#[allow(..)]`, `#[expect(..)]` | the same lints allowed on every item (e.g. `#[allow(non_snake_case)]` for an argument named `userID`, also a field) |
//! | anything else (`#[warn]`, `#[deny]`, `#[inline]`, other attribute macros) | the function only |
//!
//! Registration is one line per task: `Registry::new().register::<send_welcome_email>(state)`.
//!
//! ## The signature
//!
//! - **`async fn`**, free (not a method), not generic, not `unsafe`, not `extern`.
//! - **First parameter: the state.** Its type decides what the function receives:
//!
//!   | first parameter           | `Task::State` | the function receives           |
//!   |---------------------------|---------------|---------------------------------|
//!   | `state: S`                | `S`           | a clone of the registered state |
//!   | `state: &S`               | `S`           | a reference to it               |
//!   | `cx: TaskContext<S>`      | `S`           | the whole context (`cx.id()`, `cx.attempt()`, `cx.cancelled()`, `cx.state()`...) |
//!   | `cx: &TaskContext<S>`     | `S`           | a reference to the context      |
//!
//!   The context is recognised **by name**: a type path whose last segment is `TaskContext`
//!   with one type argument (`TaskContext<S>`, `durable_core::TaskContext<S>`,
//!   `axum_durable::core::TaskContext<S>`). Do not rename it on import. A task that needs no
//!   state takes `_: ()` and is registered with `register::<my_task>(())`. A first parameter
//!   of a primitive type (`i64`, `String`, `bool`...) is rejected as a forgotten state.
//! - **Other parameters: the task's arguments**, stored as JSON. Each must be a plain name
//!   (`user_id: i64`, `mut email: String`) with an owned serde type: no references, no
//!   `impl Trait`. `#[serde(...)]` attributes on a parameter move to its field, e.g.
//!   `#[serde(default)] locale: String` so rows stored before the argument existed still
//!   decode. Renaming a parameter renames the JSON field: old rows then fail to decode
//!   (unless you add `#[serde(alias = "old_name")]`).
//! - **Return type:**
//!
//!   | returns                      | an `Err(e)` becomes                                   |
//!   |------------------------------|-------------------------------------------------------|
//!   | `()` (or nothing)            | (never fails; a panic is a failed attempt)            |
//!   | `Result<(), TaskError>`      | `e` unchanged: **`TaskError::permanent(..)` fails at once**, `TaskError::retryable(..)` or `?` retries |
//!   | `Result<(), E>`, `E: std::error::Error + Send + Sync + 'static` (or `String`, `&'static str`, `anyhow::Error`...) | `TaskError::retryable(e)`, keeping the source chain |
//!   | `Result<(), E>`, `E: Display` | `TaskError::retryable(e.to_string())`                |
//!
//!   Aliases ending in `Result` (`io::Result<()>`, `anyhow::Result<()>`) work too. To fail
//!   permanently, return `Result<(), TaskError>` and `Err(TaskError::permanent("why"))`:
//!   the task goes to `failed` with that message in `last_error`, without further attempts.
//!
//! The future of the function must be `Send` (the runtime runs it on a multi-threaded
//! executor), and `S` must be `Clone + Send + Sync + 'static`.
//!
//! ## Attribute arguments
//!
//! | argument                      | default                      | sets                         |
//! |-------------------------------|------------------------------|------------------------------|
//! | `name = "billing.charge"`     | the function's name          | `Task::NAME`, the stored name: **keep it stable** once rows exist |
//! | `max_attempts = 5`            | `TaskOptions` default (20)   | attempts in total, ≥ 1       |
//! | `timeout = "30s"`             | `TaskOptions` default (5 min)| per-attempt limit; units `ms`, `s`, `m`, `h`, `d`, combinable (`"1h30m"`); `"none"` for no limit |
//! | `queue = "emails"`            | `"default"`                  | the queue                    |
//! | `priority = 10`               | `0`                          | an `i16`, higher runs first  |
//! | `crate = "::my::durable_core"`| detected, see below          | the path of the core crate   |
//!
//! ## Crate paths
//!
//! The generated code names the core crate and `serde`. With `axum-durable` in
//! `[dependencies]` nothing else is needed: the paths go through its hidden re-exports
//! (`::axum_durable::__private::{durable_core, serde}`, not a public API). The paths are
//! chosen from the calling crate's `Cargo.toml` (renamed and `workspace = true` dependencies
//! are followed):
//!
//! | the caller lists                                   | core crate                 | serde               |
//! |----------------------------------------------------|----------------------------|---------------------|
//! | `axum-durable`                                     | through `axum-durable`     | through `axum-durable` |
//! | `durable-core` and `serde` (no `axum-durable`)     | `::durable_core`           | `::serde`           |
//! | `#[task(crate = "path")]`                          | `path`                     | as above            |
//! | no readable manifest (a build without Cargo)       | `::axum_durable::__private::durable_core` | `::axum_durable::__private::serde` |
//!
//! When both `axum-durable` and the crate itself are listed, the one in the surer section
//! wins: `[dependencies]` over `optional = true` or `[target.'cfg(..)'.dependencies]`, both
//! over `[dev-dependencies]` (absent when the library or a binary is built); on a tie,
//! `axum-durable`. So a crate in `[dev-dependencies]` only never replaces `axum-durable`
//! in `[dependencies]`, and a library on `durable-core` whose tests use `axum-durable` keeps
//! `::durable_core`.
//!
//! If the manifest lists neither `axum-durable` nor `durable-core` (or, without
//! `axum-durable`, not `serde`), expansion stops with an error saying what to add. (The
//! derived serde code needs `serde` with its `derive` feature, which `durable-core` already
//! enables.)
//!
//! ## Limits
//!
//! - The generated struct is placed next to the function, so a type with the function's
//!   name must not already exist in that scope.
//! - `#[task]` cannot be used inside an `impl` block (a struct cannot be declared there).
//! - The generated struct is not `Clone`; build another value with `my_task::task(..)`.
//!
//! ## Lint recipe: no raw `tokio::spawn`
//!
//! Once request paths use `Durable::spawn` (persisted) or `Durable::spawn_volatile`
//! (tracked), keep raw spawns from coming back with clippy's `disallowed-methods`. Put this
//! in a `clippy.toml` next to `Cargo.toml` (or at the workspace root) and run
//! `cargo clippy -- -D clippy::disallowed_methods` (or `-D warnings`) in CI:
//!
//! ```toml
#![doc = include_str!("../tests/lint-fixture/clippy.toml")]
//! ```
//!
//! The `tokio::spawn` entry also catches `tokio::task::spawn(..)` and a `spawn(..)` imported
//! with `use`: clippy resolves the re-export to the one function (checked with clippy 1.95:
//! `tokio::spawn`, `tokio::task::spawn` and the definition path `tokio::task::spawn::spawn`
//! all work, and each flags both call forms). An audited exception (a boot-time loop owned by
//! `main`) is marked where it happens:
//!
//! ```ignore
//! #[expect(clippy::disallowed_methods, reason = "boot-time loop owned by main, aborted on shutdown")]
//! let metrics = tokio::spawn(metrics_loop());
//! ```
//!
//! This exact file is tested: `tests/lint_recipe.rs` runs clippy on a fixture crate calling
//! `tokio::spawn` and asserts it fails with the reason above.

use proc_macro::TokenStream;
use quote::ToTokens;

mod args;
mod attrs;
mod debug;
mod expand;
mod manifest;
mod output;
mod paths;
mod signature;

/// Turns an `async fn` into a durable task: see the [crate documentation](crate) for the
/// generated items, the accepted signatures and the arguments.
///
/// ```no_run
/// # use durable_macros::task;
/// # #[derive(Clone)] struct AppState;
/// #[task(max_attempts = 10, timeout = "30s")]
/// async fn send_welcome_email(state: AppState, user_id: i64) -> Result<(), String> {
///     # let _ = (state, user_id);
///     Ok(())
/// }
/// // durable.spawn(send_welcome_email::task(user_id));
/// // Registry::new().register::<send_welcome_email>(state);
/// ```
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut args = args::TaskArgs::default();
    let parser = syn::meta::parser(|meta| args.parse_one(&meta));
    let attr_result = syn::parse::Parser::parse(parser, attr);

    let item: syn::Item = match syn::parse(item) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error().into(),
    };
    let syn::Item::Fn(mut func) = item else {
        return syn::Error::new_spanned(&item, "`#[task]` can only be placed on an `async fn`")
            .to_compile_error()
            .into();
    };
    if let Err(e) = attr_result {
        // Keep the function so its callers do not report errors of their own.
        expand::strip_serde_attrs(&mut func);
        let mut tokens = e.to_compile_error();
        func.to_tokens(&mut tokens);
        return tokens.into();
    }
    expand::expand(&args, func).into()
}
