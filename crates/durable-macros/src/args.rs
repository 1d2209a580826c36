//! Parsing of the attribute's own arguments: `#[task(name = "...", max_attempts = 5, ...)]`.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitInt, LitStr, Path, UnOp};

/// Every key `#[task(...)]` accepts, for the "unknown argument" message.
const KEYS: &str = "`name`, `max_attempts`, `timeout`, `queue`, `priority`, `crate`";

/// What a per-attempt timeout was set to.
#[derive(Clone, Copy)]
pub(crate) enum Timeout {
    /// A limit, in milliseconds.
    Millis(u64),
    /// `timeout = "none"`: no limit.
    Disabled,
}

/// The parsed arguments of one `#[task(...)]`.
#[derive(Default)]
pub(crate) struct TaskArgs {
    /// `name = "..."`: the stable stored name.
    pub(crate) name: Option<LitStr>,
    /// `max_attempts = N` (at least 1).
    pub(crate) max_attempts: Option<u32>,
    /// `timeout = "30s"` or `"none"`.
    pub(crate) timeout: Option<Timeout>,
    /// `queue = "..."`.
    pub(crate) queue: Option<LitStr>,
    /// `priority = N` (an `i16`, may be negative).
    pub(crate) priority: Option<i16>,
    /// `crate = "path"`: where the core crate is reached.
    pub(crate) krate: Option<Path>,
}

impl TaskArgs {
    /// Handles one `key = value` of the attribute.
    pub(crate) fn parse_one(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match key.as_str() {
            "name" => {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(
                        &lit,
                        "the task name cannot be empty",
                    ));
                }
                set(&mut self.name, lit, meta)
            }
            "queue" => {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(
                        &lit,
                        "the queue name cannot be empty",
                    ));
                }
                set(&mut self.queue, lit, meta)
            }
            "max_attempts" => {
                let expr: Expr = meta.value()?.parse()?;
                let n = int_literal(&expr, "max_attempts = 5")?;
                let n = u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
                    syn::Error::new_spanned(
                        &expr,
                        "`max_attempts` counts every attempt, the first included: \
                             it must be between 1 and 4294967295",
                    )
                })?;
                set(&mut self.max_attempts, n, meta)
            }
            "priority" => {
                let expr: Expr = meta.value()?.parse()?;
                let n = int_literal(&expr, "priority = 10")?;
                let n = i16::try_from(n).map_err(|_| {
                    syn::Error::new_spanned(
                        &expr,
                        "`priority` is an `i16`: it must be between -32768 and 32767",
                    )
                })?;
                set(&mut self.priority, n, meta)
            }
            "timeout" => {
                let expr: Expr = meta.value()?.parse()?;
                let Expr::Lit(ExprLit {
                    lit: Lit::Str(lit), ..
                }) = &expr
                else {
                    return Err(syn::Error::new_spanned(
                        &expr,
                        "write the timeout as a string with a unit, like `timeout = \"30s\"`, \
                         `\"500ms\"`, `\"5m\"`, `\"1h30m\"`, or `timeout = \"none\"` for no limit",
                    ));
                };
                let timeout = parse_timeout(&lit.value())
                    .map_err(|message| syn::Error::new_spanned(lit, message))?;
                set(&mut self.timeout, timeout, meta)
            }
            "crate" => {
                let expr: Expr = meta.value()?.parse()?;
                let path = match &expr {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(lit), ..
                    }) => lit.parse::<Path>()?,
                    Expr::Path(path) if path.qself.is_none() => path.path.clone(),
                    _ => {
                        return Err(syn::Error::new_spanned(
                            &expr,
                            "expected the path of the core crate, like \
                             `crate = \"::axum_durable::core\"` or `crate = \"::durable_core\"`",
                        ))
                    }
                };
                set(&mut self.krate, path, meta)
            }
            _ => Err(meta.error(format!(
                "unknown `#[task]` argument; expected one of {KEYS}"
            ))),
        }
    }
}

/// Stores `value` unless the key was already given.
fn set<T>(slot: &mut Option<T>, value: T, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error("this `#[task]` argument is given twice"));
    }
    *slot = Some(value);
    Ok(())
}

/// An integer literal, possibly negated, as an `i64`.
fn int_literal(expr: &Expr, example: &str) -> syn::Result<i64> {
    let (negative, lit): (bool, &LitInt) = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => (false, lit),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(lit), ..
            }) => (true, lit),
            _ => return Err(not_an_integer(expr.span(), example)),
        },
        _ => return Err(not_an_integer(expr.span(), example)),
    };
    let n: i64 = lit.base10_parse()?;
    Ok(if negative { -n } else { n })
}

fn not_an_integer(span: Span, example: &str) -> syn::Error {
    syn::Error::new(
        span,
        format!("expected an integer literal, like `{example}`"),
    )
}

/// Parses `"30s"`, `"500ms"`, `"1h30m"`, `"2m 10s"` or `"none"`.
pub(crate) fn parse_timeout(text: &str) -> Result<Timeout, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(Timeout::Disabled);
    }
    let help = "expected a duration like \"30s\", \"500ms\", \"5m\", \"2h\" or \"1h30m\" \
                (units: ms, s, m, h, d), or \"none\" for no limit";
    if text.is_empty() {
        return Err(format!("empty timeout: {help}"));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid timeout `{text}`: {help}"));
        }
        let amount: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid timeout `{text}`: {help}"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" | "msec" | "millis" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            "" => {
                return Err(format!(
                    "timeout `{text}` is missing a unit after `{amount}`: {help}"
                ))
            }
            other => {
                return Err(format!(
                    "unknown unit `{other}` in timeout `{text}`: {help}"
                ))
            }
        };
        total = amount
            .checked_mul(millis_per_unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("timeout `{text}` is too large"))?;
        rest = rest[unit_len..].trim_start();
    }
    if total == 0 {
        return Err(format!(
            "a timeout of zero would fail every attempt; use `timeout = \"none\"` for no limit, \
             or {help}"
        ));
    }
    Ok(Timeout::Millis(total))
}

#[cfg(test)]
mod tests {
    use super::{parse_timeout, Timeout};

    fn millis(text: &str) -> Option<u64> {
        match parse_timeout(text) {
            Ok(Timeout::Millis(ms)) => Some(ms),
            _ => None,
        }
    }

    #[test]
    fn parses_durations() {
        assert_eq!(millis("30s"), Some(30_000));
        assert_eq!(millis("500ms"), Some(500));
        assert_eq!(millis("5m"), Some(300_000));
        assert_eq!(millis("1h30m"), Some(5_400_000));
        assert_eq!(millis("2m 10s"), Some(130_000));
        assert_eq!(millis("1d"), Some(86_400_000));
        assert_eq!(millis("30 seconds"), Some(30_000));
        assert_eq!(millis("1 hour 2 min"), Some(3_720_000));
        assert!(matches!(parse_timeout("none"), Ok(Timeout::Disabled)));
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in [
            "",
            "30",
            "s",
            "30x",
            "30 fortnights",
            "0s",
            "1.5s",
            "-3s",
            "99999999999999999999d",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
