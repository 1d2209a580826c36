//! The admin JSON API and dashboard (feature `admin`): an [`axum::Router`] to nest under a
//! path of your choice, over the store's inspection and the operator's actions.
//!
//! What it shows: counts per state and per queue (each labelled exact, at least or
//! estimated: exact counts of a big table are what make admin pages slow), the throughput
//! and failure rate of the last hour, task lists with filters and keyset pages, and one task
//! in full — payload, attempts, error history, steps, timestamps, lease owner. What it does:
//! retry one task or every failed task of a type, cancel, delete, requeue a stuck one.
//!
//! # Safe by default
//!
//! - **No router without an access decision.** [`Admin::new`] has no `into_router` until
//!   [`authorize`](Admin::authorize) (your [`Authorize`], or the ready-made [`BasicAuth`]),
//!   [`login`](Admin::login) (a login page: [`LoginForm`]) or the loudly named
//!   [`allow_everyone_insecure_local_only`](Admin::allow_everyone_insecure_local_only) is
//!   called.
//! - **Read-only unless granted:** a [`Principal`] acts only if
//!   [`can_act`](Principal::can_act) ([`Role::Actions`]).
//! - **Actions are POST only, and CSRF-checked:** the request must carry the token of the
//!   `durable_admin_csrf` cookie back, in the form's `csrf` field or an `X-CSRF-Token`
//!   header (double submit), and must not come from another site (`Origin`,
//!   `Sec-Fetch-Site`). A script may pick any token of 64 hexadecimal characters and send
//!   it both ways.
//! - **Actions carry what the operator saw** (state and attempts): an action on a task that
//!   moved on since answers `409 Conflict` and changes nothing.
//! - **Every action is logged** with `tracing`, target `durable::admin`: principal, action,
//!   task(s), outcome. So are refused ones.
//! - **Payloads pass through your [`redact`](Admin::redact) hook** before the API or a page
//!   shows them (and searching payloads is then off, since a search could probe what the
//!   hook hides). Everything shown in HTML is escaped; the pages run no script
//!   (`Content-Security-Policy: default-src 'none'`).
//! - **Errors show no internals:** a failed store call is logged with an error id; the
//!   answer shows the id.
//!
//! # Routes
//!
//! Relative to where the router is nested (`/admin` below):
//!
//! | Route | What |
//! |---|---|
//! | `GET /admin/` | overview: counts, chart of the last hour, queues, latest failures |
//! | `GET /admin/tasks?state=&name=&queue=&from=&until=&search=&order=&after=` | a list page |
//! | `GET /admin/tasks/{id}` | one task, with its action buttons |
//! | `POST /admin/tasks/{id}/{retry,cancel,delete,requeue}` | an action (form), back to the task |
//! | `POST /admin/retry-failed` | retry every failed task of a type (form) |
//! | `GET /admin/login`, `POST /admin/login`, `POST /admin/logout` | with [`LoginForm`] |
//! | `GET /admin/api/stats` | counts per state and queue |
//! | `GET /admin/api/throughput` | ended attempts per minute, last hour |
//! | `GET /admin/api/tasks?...` | a list page (`next`: the cursor of the following one) |
//! | `GET /admin/api/tasks/{id}` | one task in full |
//! | `POST /admin/api/tasks/{id}/{retry,cancel,delete,requeue}` | an action; body `{"state": .., "attempts": ..}` |
//! | `POST /admin/api/retry-failed` | body `{"name": .., "queue": .., "limit": ..}` |
//! | `POST /admin/api/requeue-stuck` | body `{"running_for_secs": .., "name": .., "limit": ..}` |
//!
//! # Examples
//!
//! ```no_run
//! use axum::Router;
//! use axum_durable::admin::{Admin, LoginForm, Role, Users};
//! use axum_durable::sqlite::SqliteStore;
//!
//! # async fn app() -> Result<Router, Box<dyn std::error::Error>> {
//! let store = SqliteStore::connect("sqlite://app.db").await?;
//! let users = Users::new()
//!     .user("oncall", &std::env::var("ADMIN_PASSWORD")?, Role::Actions)
//!     .user("support", &std::env::var("SUPPORT_PASSWORD")?, Role::ReadOnly);
//! let admin = Admin::new(store.clone())
//!     .login(LoginForm::new(users))
//!     .redact(|_task_type, payload| {
//!         if let Some(email) = payload.get_mut("email") {
//!             *email = "***".into();
//!         }
//!     })
//!     .into_router();
//! Ok(Router::new().nest_service("/admin", admin))
//! # }
//! ```
//!
//! Without an access decision there is no router:
//!
//! ```compile_fail
//! # fn app(store: axum_durable::sqlite::SqliteStore) {
//! let admin: axum::Router = axum_durable::admin::Admin::new(store).into_router();
//! # }
//! ```

mod access;
mod actions;
mod api;
mod cookies;
mod guard;
mod html;
mod login;
mod problem;
mod query;
mod redact;
mod router;
mod state;
mod users;
mod view;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use durable_core::store::{AdminStore, StepStore};

pub use access::{Authorize, Principal, Refusal};
pub use login::LoginForm;
pub use users::{BasicAuth, Role, Users};

use state::{AccessRule, Shared};

/// Tasks per list page, by default.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// The builder of the admin router: see the [module documentation](self).
///
/// `Access` is [`Undecided`] until an access decision is made; only then is
/// [`into_router`](Admin::into_router) available.
pub struct Admin<Access = Undecided> {
    shared: Shared,
    access: Access,
}

/// No access decision yet: the router cannot be built.
#[derive(Debug)]
pub struct Undecided(());

/// An access decision was made: the router can be built.
#[derive(Debug)]
pub struct Decided(());

impl<Access: fmt::Debug> fmt::Debug for Admin<Access> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("shared", &self.shared)
            .field("access", &self.access)
            .finish()
    }
}

impl Admin<Undecided> {
    /// An admin router over `store` (any store: `SqliteStore`, `PostgresStore`,
    /// `Arc<dyn Store>`), with no access decision yet.
    pub fn new<S: AdminStore + StepStore>(store: S) -> Self {
        Self {
            shared: Shared {
                store: Arc::new(store),
                // Replaced by the access decision; nothing can be built before it.
                access: AccessRule::Authorizer(Arc::new(Nobody)),
                login: None,
                redact: None,
                page_size: DEFAULT_PAGE_SIZE,
                secure_cookies: false,
            },
            access: Undecided(()),
        }
    }

    /// Lets `authorizer` decide who gets in and who may act ([`BasicAuth`], or your own
    /// [`Authorize`]).
    pub fn authorize(self, authorizer: impl Authorize) -> Admin<Decided> {
        self.decide(AccessRule::Authorizer(Arc::new(authorizer)), None)
    }

    /// A login page and sessions for the users of `form`: browsers without a session are
    /// sent to `<prefix>/login`; API clients may also use `Authorization: Basic`.
    pub fn login(self, form: LoginForm) -> Admin<Decided> {
        self.decide(AccessRule::Authorizer(Arc::new(form.clone())), Some(form))
    }

    /// Lets **everyone who can reach the router** see every task and act on it, with no
    /// authentication at all: only for a router bound to localhost on a developer's machine.
    /// A warning is logged when the router is built. CSRF checks still apply, and only
    /// requests for a loopback host (`Host: localhost`, `127.0.0.1` or `[::1]`, any port) are
    /// answered; others get `403 Forbidden`, so that a web page whose name resolves to
    /// 127.0.0.1 (DNS rebinding) cannot use the router from the developer's browser.
    pub fn allow_everyone_insecure_local_only(self) -> Admin<Decided> {
        self.decide(AccessRule::Everyone, None)
    }

    fn decide(mut self, access: AccessRule, login: Option<LoginForm>) -> Admin<Decided> {
        self.shared.access = access;
        self.shared.login = login;
        Admin {
            shared: self.shared,
            access: Decided(()),
        }
    }
}

impl<Access> Admin<Access> {
    /// Passes every payload (and step output) through `redact` before it is shown, in the
    /// API and the pages: it gets the task type's name (`<task type>/<step>` for a step's
    /// output) and the JSON value, to change in place. Payload search is then refused,
    /// since its matches would tell what the hook hides.
    #[must_use]
    pub fn redact(
        mut self,
        redact: impl Fn(&str, &mut serde_json::Value) + Send + Sync + 'static,
    ) -> Self {
        self.shared.redact = Some(Arc::new(redact));
        self
    }

    /// Tasks per list page (1..=[`MAX_LIST_LIMIT`](durable_core::store::MAX_LIST_LIMIT);
    /// default [`DEFAULT_PAGE_SIZE`]).
    #[must_use]
    pub fn page_size(mut self, size: u32) -> Self {
        self.shared.page_size = size.clamp(1, durable_core::store::MAX_LIST_LIMIT);
        self
    }

    /// Marks the session and CSRF cookies `Secure` (sent over HTTPS only). Set it whenever
    /// the admin router is served over HTTPS; it is off by default so that a router on
    /// `http://localhost` works.
    #[must_use]
    pub fn secure_cookies(mut self, secure: bool) -> Self {
        self.shared.secure_cookies = secure;
        self
    }
}

impl Admin<Decided> {
    /// The router, to mount under a path of your choice with
    /// `app.nest_service("/admin", admin)` (which, unlike `nest`, also routes `/admin/` to
    /// the overview, and fits an app of any state). Links and cookies follow the path it is
    /// mounted at.
    pub fn into_router(self) -> Router {
        if matches!(self.shared.access, AccessRule::Everyone) {
            tracing::warn!(
                target: "durable::admin",
                "the admin router lets EVERYONE who can reach it see and act on every task \
                 (allow_everyone_insecure_local_only): use it on localhost only"
            );
        }
        router::build(self.shared)
    }
}

/// The access rule before a decision: refuses everyone (never reached: no router is built
/// without a decision).
#[derive(Debug)]
struct Nobody;

impl Authorize for Nobody {
    async fn authorize(&self, _parts: &http::request::Parts) -> Result<Principal, Refusal> {
        Err(Refusal::forbidden())
    }
}
