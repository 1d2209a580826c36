//! The read-only commands: `stats`, `list`, `show`.

use std::fmt::Write as _;

use durable_core::store::ListQuery;
use durable_core::TaskId;
use serde_json::{json, Map, Value};

use super::{print_json, print_text, Ctx, Tally};
use crate::cli::ListArgs;
use crate::error::{Error, Result};
use crate::render;
use crate::table::{clip, Table};

/// `stats`: counts per state and per queue, with how each was obtained.
pub(super) async fn stats(ctx: &Ctx) -> Result<Tally> {
    let figures = ctx.store.stats().await.map_err(Error::store("stats"))?;
    if ctx.json {
        let states: Map<String, Value> = figures
            .states
            .iter()
            .map(|(state, count)| (state.as_str().to_owned(), render::count(*count)))
            .collect();
        let queues: Vec<Value> = figures
            .queues
            .iter()
            .map(|q| {
                json!({
                    "queue": q.queue,
                    "pending": render::count(q.pending),
                    "processing": render::count(q.processing),
                })
            })
            .collect();
        print_json(
            &json!({ "states": states, "queues": queues, "due": render::count(figures.due) }),
        )?;
        return Ok(Tally::default());
    }
    let mut states = Table::new(["STATE", "COUNT", "HOW"]);
    for (state, count) in &figures.states {
        states.row(vec![
            state.to_string(),
            count.to_string(),
            count.kind().into(),
        ]);
    }
    states.row(vec![
        "due now".into(),
        figures.due.to_string(),
        figures.due.kind().into(),
    ]);
    let mut out = states.render();
    if figures.queues.is_empty() {
        out.push_str("\nno queue has pending or processing tasks\n");
    } else {
        let mut queues = Table::new(["QUEUE", "PENDING", "PROCESSING"]);
        for q in &figures.queues {
            queues.row(vec![
                q.queue.clone(),
                q.pending.to_string(),
                q.processing.to_string(),
            ]);
        }
        out.push('\n');
        out.push_str(&queues.render());
    }
    out.push_str("\n(N+: at least N, counting stopped there; ~N: estimated)\n");
    print_text(&out)?;
    Ok(Tally::default())
}

/// `list`: one page of tasks, and the cursor of the next.
pub(super) async fn list(ctx: &Ctx, args: &ListArgs) -> Result<Tally> {
    let now = chrono::Utc::now();
    let mut query = ListQuery::new(args.limit);
    query.state = args.state;
    query.name.clone_from(&args.task_type);
    query.queue.clone_from(&args.queue);
    query.created_from = args.since.map(|w| w.resolve(now));
    query.created_until = args.until.map(|w| w.resolve(now));
    query.search.clone_from(&args.search);
    query.newest_first = args.newest;
    query.after = args.after;
    let page = ctx.store.list(&query).await.map_err(Error::store("list"))?;
    if ctx.json {
        print_json(&json!({
            "tasks": page.tasks.iter().map(render::record).collect::<Vec<_>>(),
            "next": page.next.map(|id| id.to_string()),
        }))?;
        return Ok(Tally::default());
    }
    let mut table = Table::new([
        "ID",
        "STATE",
        "TYPE",
        "QUEUE",
        "ATTEMPTS",
        "CREATED",
        "RUN AT",
        "LAST ERROR",
    ]);
    for task in &page.tasks {
        table.row(vec![
            task.id.to_string(),
            task.state.to_string(),
            task.name.clone(),
            task.queue.clone(),
            format!("{}/{}", task.attempts, task.max_attempts),
            render::time(task.created_at),
            render::time(task.run_at),
            task.last_error
                .as_deref()
                .map_or_else(String::new, |e| clip(e, 60)),
        ]);
    }
    let mut out = if page.tasks.is_empty() {
        "no tasks on this page\n".to_owned()
    } else {
        table.render()
    };
    match page.next {
        Some(next) => {
            let _ = writeln!(out, "next page: --after {next}");
        }
        None => out.push_str("(end of list)\n"),
    }
    print_text(&out)?;
    Ok(Tally::default())
}

/// `show`: every field of one task, its error history and its steps.
pub(super) async fn show(ctx: &Ctx, id: TaskId) -> Result<Tally> {
    let task = ctx
        .store
        .get(id)
        .await
        .map_err(Error::store("show"))?
        .ok_or(Error::NotFound(id))?;
    let steps = ctx.store.steps(id).await.map_err(Error::store("show"))?;
    let mut steps: Vec<_> = steps.iter().collect();
    // The store returns steps in no particular order: by attempt, then name, reads as a story.
    steps.sort_by(|a, b| (a.attempt, &a.name).cmp(&(b.attempt, &b.name)));
    if ctx.json {
        let mut value = render::record(&task);
        value["steps"] = steps.iter().map(|s| render::step(s)).collect();
        print_json(&value)?;
        return Ok(Tally::default());
    }
    let mut out = String::new();
    let fields: [(&str, String); 18] = [
        ("id", task.id.to_string()),
        ("type", task.name.clone()),
        ("queue", task.queue.clone()),
        ("state", task.state.to_string()),
        ("priority", task.priority.to_string()),
        (
            "attempts",
            format!("{} of {}", task.attempts, task.max_attempts),
        ),
        ("requeues", task.requeues.to_string()),
        (
            "unique key",
            task.unique_key.clone().unwrap_or_else(|| "-".into()),
        ),
        ("created at", render::time(task.created_at)),
        ("run at", render::time(task.run_at)),
        ("started at", render::time_or_dash(task.started_at)),
        ("updated at", render::time(task.updated_at)),
        ("finished at", render::time_or_dash(task.finished_at)),
        (
            "worker",
            task.lease_owner
                .map_or_else(|| "-".into(), |w| w.to_string()),
        ),
        ("lease expires", render::time_or_dash(task.lease_expires_at)),
        (
            "cancel asked",
            render::time_or_dash(task.cancel_requested_at),
        ),
        (
            "last error",
            task.last_error
                .as_deref()
                .map_or_else(|| "-".into(), |e| clip(e, 200)),
        ),
        ("steps", steps.len().to_string()),
    ];
    for (name, value) in fields {
        let _ = writeln!(out, "{name:<14}{value}");
    }
    let _ = writeln!(out, "\npayload:\n{}", render::payload_pretty(&task.payload));
    if !task.errors.is_empty() {
        out.push_str("\nerrors (oldest first):\n");
        let mut table = Table::new(["ATTEMPT", "AT", "WORKER", "MESSAGE"]);
        for e in &task.errors {
            table.row(vec![
                e.attempt.to_string(),
                render::time(e.at),
                e.worker.map_or_else(|| "-".into(), |w| w.to_string()),
                clip(&e.message, 200),
            ]);
        }
        out.push_str(&table.render());
    }
    if !steps.is_empty() {
        out.push_str("\nsteps:\n");
        let mut table = Table::new(["ATTEMPT", "NAME", "OUTPUT"]);
        for s in &steps {
            table.row(vec![
                s.attempt.to_string(),
                s.name.clone(),
                clip(&s.output, 200),
            ]);
        }
        out.push_str(&table.render());
    }
    print_text(&out)?;
    Ok(Tally::default())
}
