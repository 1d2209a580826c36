//! The operators' dashboard and JSON API at `/admin` (`axum_durable::admin`), behind a login
//! page: `ADMIN_USER`/`ADMIN_PASSWORD` may act, `ADMIN_VIEWER_USER`/`ADMIN_VIEWER_PASSWORD`
//! may only look. Email addresses in payloads are masked.

use axum::Router;
use axum_durable::admin::{Admin, LoginForm, Role, Users};
use serde_json::Value;

use crate::config::Config;
use crate::db::Db;

/// The admin router, or `None` (logged) when no admin password is configured.
pub(crate) fn router(config: &Config, db: &Db) -> Option<Router> {
    let Some((user, password)) = &config.admin else {
        tracing::info!("ADMIN_PASSWORD is not set: the admin dashboard (/admin) is not mounted");
        return None;
    };
    let mut users = Users::new().user(user.as_str(), password, Role::Actions);
    if let Some((viewer, viewer_password)) = &config.admin_viewer {
        users = users.user(viewer.as_str(), viewer_password, Role::ReadOnly);
    }
    tracing::info!(operator = %user, viewer = ?config.admin_viewer.as_ref().map(|(name, _)| name),
        "admin dashboard mounted at /admin");
    let admin = Admin::new(db.store())
        .login(LoginForm::new(users))
        .redact(|_task_type, payload| mask_emails(payload))
        .into_router();
    Some(admin)
}

/// Masks every `email` field (at any depth): `ada@example.com` becomes `a***@example.com`.
fn mask_emails(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match field {
                    Value::String(email) if key == "email" => *email = mask(email),
                    other => mask_emails(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_emails),
        _ => {}
    }
}

fn mask(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_masked_at_any_depth() {
        let mut payload = serde_json::json!({
            "email": "ada@example.com",
            "users": [{ "email": "bob@example.org", "name": "Bob" }],
            "note": "kept",
        });
        mask_emails(&mut payload);
        assert_eq!(payload["email"], "a***@example.com");
        assert_eq!(payload["users"][0]["email"], "b***@example.org");
        assert_eq!(payload["users"][0]["name"], "Bob");
        assert_eq!(payload["note"], "kept");
    }
}
