//! The subcommands, run against an open store.

mod act;
mod bulk;
mod inspect;

use std::io::Write as _;
use std::sync::Arc;

use durable_core::store::Store;
use serde_json::Value;

use crate::cli::{Cli, Command};
use crate::connect;
use crate::error::{Error, Result, EXIT_CONFLICT, EXIT_NOT_FOUND};

/// What a command needs besides its arguments: the store, the output mode, who acts.
struct Ctx {
    store: Arc<dyn Store>,
    json: bool,
    yes: bool,
    actor: String,
}

/// Writes one JSON document on stdout.
fn print_json(value: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Writes text on stdout.
fn print_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

impl Ctx {
    /// Refuses a bulk action the operator has not confirmed.
    fn confirmed(&self, what: &str) -> Result<()> {
        if self.yes {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "{what} changes many tasks: add --yes to confirm"
            )))
        }
    }
}

/// What the per-id outcomes of a command add up to, for its exit code.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    not_found: bool,
    conflict: bool,
}

impl Tally {
    fn exit_code(self) -> u8 {
        if self.not_found {
            EXIT_NOT_FOUND
        } else if self.conflict {
            EXIT_CONFLICT
        } else {
            0
        }
    }
}

/// Opens the store and runs the command; returns the exit code of a command that ran.
pub(crate) async fn run(cli: Cli) -> Result<u8> {
    if let Command::Retry(args) = &cli.command {
        if let Some(flag) = args.misplaced_filter() {
            return Err(Error::Usage(format!(
                "{flag} applies to retry --failed only"
            )));
        }
    }
    let url = cli.database_url.as_deref().ok_or_else(|| {
        Error::Usage("no database: pass --database-url or set DATABASE_URL".into())
    })?;
    let create = matches!(cli.command, Command::Migrate);
    let store = connect::open(
        url,
        cli.schema.as_deref(),
        create,
        cli.connect_timeout.into(),
    )
    .await?;
    let actor = cli
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    let ctx = Ctx {
        store,
        json: cli.json,
        yes: cli.yes,
        actor,
    };
    let tally = match cli.command {
        Command::Migrate => {
            ctx.store.migrate().await.map_err(Error::store("migrate"))?;
            tracing::info!(actor = %ctx.actor, action = "migrate", "migrations applied");
            if ctx.json {
                print_json(&serde_json::json!({ "migrated": true }))?;
            } else {
                print_text("migrations applied")?;
            }
            Tally::default()
        }
        Command::Stats => inspect::stats(&ctx).await?,
        Command::List(args) => inspect::list(&ctx, &args).await?,
        Command::Show { id } => inspect::show(&ctx, id).await?,
        Command::Retry(args) if args.failed => bulk::retry_failed(&ctx, &args).await?,
        Command::Retry(args) => act::each(&ctx, act::Action::Retry, &args.ids).await?,
        Command::Cancel { ids } => act::each(&ctx, act::Action::Cancel, &ids).await?,
        Command::Delete { ids } => act::each(&ctx, act::Action::Delete, &ids).await?,
        Command::Prune(args) => bulk::prune(&ctx, &args).await?,
        Command::RequeueStuck(args) if args.ids.is_empty() => {
            bulk::requeue_stuck(&ctx, &args).await?
        }
        Command::RequeueStuck(args) => act::each(&ctx, act::Action::Requeue, &args.ids).await?,
    };
    Ok(tally.exit_code())
}
