//! An application that depends on `axum-durable` under another name, and on nothing else.

use web_tasks::{task, Registry};

/// The application state.
#[derive(Clone, Debug)]
pub struct AppState;

/// Charges a card.
#[task(name = "billing.charge")]
pub async fn charge(state: &AppState, cents: u64) -> Result<(), web_tasks::TaskError> {
    let _ = (state, cents);
    Ok(())
}

/// The registry with every task of the application.
pub fn registry() -> Registry {
    Registry::new().register::<charge>(AppState)
}
