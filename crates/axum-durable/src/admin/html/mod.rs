//! The dashboard: server-rendered pages, everything escaped, no script.

mod chart;
mod detail;
mod pages;

use std::fmt::Write as _;

use axum::response::Html;
use chrono::{DateTime, Utc};
use http::StatusCode;

use super::guard::RequestCtx;

pub(crate) use detail::{act, detail};
pub(crate) use pages::{list, overview, retry_failed};

/// Escapes text for HTML content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A time as pages show it (UTC, to the second).
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An optional time, or a dash.
pub(crate) fn maybe_time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "—".to_owned(), time)
}

const CSS: &str = "
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2330;--mute:#667085;--line:#e4e7ec;--accent:#3b5bdb;
--ok:#2f9e44;--warn:#f08c00;--bad:#e03131;--info:#1c7ed6;--grey:#868e96}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;
background:var(--bg);color:var(--ink)}
header{background:#1d2330;color:#fff}nav{display:flex;gap:4px;align-items:center;max-width:1200px;
margin:0 auto;padding:0 16px}nav a{color:#cfd6e4;text-decoration:none;padding:14px 12px}
nav a:hover,nav a.on{color:#fff;background:#2b3345}nav .brand{font-weight:600;color:#fff;margin-right:12px}
nav .who{margin-left:auto;color:#cfd6e4;font-size:13px}nav form{margin:0 0 0 8px}
main{max-width:1200px;margin:0 auto;padding:20px 16px}h1{font-size:20px;margin:4px 0 16px}
h2{font-size:16px;margin:24px 0 10px}a{color:var(--accent)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;
text-decoration:none;color:inherit;display:block}.card .n{font-size:24px;font-weight:600}
.card .l{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .k{color:var(--mute);font-size:11px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px;overflow-x:auto}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:7px 8px;border-bottom:1px solid var(--line);
vertical-align:top}th{font-size:12px;color:var(--mute);font-weight:600;text-transform:uppercase;letter-spacing:.03em}
td.err{color:#a61e1e;max-width:420px;word-break:break-word}code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#f1f3f5;padding:10px;border-radius:6px;overflow:auto;max-height:420px;margin:0}
.state{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.s-pending{background:var(--info)}.s-processing{background:var(--warn)}.s-completed{background:var(--ok)}
.s-failed{background:var(--bad)}.s-cancelled{background:var(--grey)}
form.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:end;margin-bottom:12px}
label{display:flex;flex-direction:column;font-size:12px;color:var(--mute);gap:2px}
input,select{font:inherit;padding:5px 7px;border:1px solid #cfd4dc;border-radius:6px;background:#fff}
button{font:inherit;padding:6px 12px;border-radius:6px;border:1px solid #cfd4dc;background:#fff;cursor:pointer}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button.danger{background:#fff;border-color:var(--bad);color:var(--bad)}
.actions{display:flex;gap:8px;flex-wrap:wrap;margin:12px 0}.actions form{margin:0}
.flash{padding:10px 12px;border-radius:6px;margin-bottom:12px;background:#e7f5ff;border:1px solid #a5d8ff}
.flash.bad{background:#fff5f5;border-color:#ffc9c9}dl{display:grid;grid-template-columns:180px 1fr;gap:6px 12px;margin:0}
dt{color:var(--mute)}dd{margin:0;word-break:break-all}.muted{color:var(--mute)}
.legend span{display:inline-flex;align-items:center;gap:4px;margin-right:14px;font-size:12px;color:var(--mute)}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px}
.login{max-width:340px;margin:80px auto}.login form{display:flex;flex-direction:column;gap:12px}
";

/// A page of the dashboard: navigation, who is logged in, and `body`.
pub(crate) fn page(ctx: &RequestCtx, title: &str, current: &str, body: &str) -> Html<String> {
    let p = escape(&ctx.prefix);
    let mut html = String::with_capacity(body.len() + 4096);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Tasks admin</title><style>{CSS}</style></head><body><header><nav>\
         <span class=\"brand\">Tasks admin</span>",
        escape(title)
    );
    for (id, href, label) in [
        ("nav-overview", "/", "Overview"),
        ("nav-failed", "/tasks?state=failed", "Failed"),
        ("nav-processing", "/tasks?state=processing", "Processing"),
        ("nav-pending", "/tasks?state=pending", "Pending"),
        ("nav-tasks", "/tasks", "All tasks"),
    ] {
        let on = if id == current { " class=\"on\"" } else { "" };
        let _ = write!(html, "<a id=\"{id}\"{on} href=\"{p}{href}\">{label}</a>");
    }
    let role = if ctx.principal.can_act {
        ""
    } else {
        " (read-only)"
    };
    let _ = write!(
        html,
        "<span class=\"who\">{}{role}</span>",
        escape(&ctx.principal.name)
    );
    if ctx.login {
        let _ = write!(
            html,
            "<form method=\"post\" action=\"{p}/logout\"><input type=\"hidden\" name=\"csrf\" \
             value=\"{}\"><button id=\"logout\" type=\"submit\">Log out</button></form>",
            escape(&ctx.csrf)
        );
    }
    let _ = write!(html, "</nav></header><main>{body}</main></body></html>");
    Html(html)
}

/// The state of a task as a badge.
pub(crate) fn state_badge(state: durable_core::TaskState, id_attr: &str) -> String {
    format!(
        "<span{id_attr} class=\"state task-state s-{0}\">{0}</span>",
        state.as_str()
    )
}

/// A bare page with one message (errors, refusals), outside the navigation.
pub(crate) fn message_page(prefix: &str, status: StatusCode, message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code}</title>\
         <style>{CSS}</style></head><body><main><h1>{code} {reason}</h1><p>{message}</p>\
         <p><a href=\"{prefix}/\">Back to the overview</a></p></main></body></html>",
        code = status.as_u16(),
        reason = escape(status.canonical_reason().unwrap_or("")),
        message = escape(message),
        prefix = escape(prefix),
    )
}

/// The login page, with a notice after a refused attempt.
pub(crate) fn login_page(ctx: &RequestCtx, refused: bool) -> Html<String> {
    let notice = if refused {
        "<div class=\"flash bad\" id=\"login-error\">Wrong user name or password.</div>"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Log in · Tasks admin</title><style>{CSS}</style></head><body><main class=\"login\">\
         <h1>Tasks admin</h1>{notice}<div class=\"panel\"><form method=\"post\" action=\"{p}/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>User name<input name=\"username\" autocomplete=\"username\" required autofocus></label>\
         <label>Password<input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button class=\"primary\" type=\"submit\">Log in</button></form></div></main></body></html>",
        p = escape(&ctx.prefix),
        csrf = escape(&ctx.csrf),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
