//! Redefining `durable_now()`, the time every statement of the store takes as "now" (for a
//! test clock).

use sqlx::PgPool;

use crate::error::{Error, Result};
use crate::util::detached;

/// The definition of `durable_now()` at `offset_ms` ahead of `now()`: the shape migration 8
/// creates (a one-line SQL function, inlined by the planner), so plans keep their indexes.
/// The offset is an integer, so formatting it into the text is safe.
fn definition(offset_ms: i64) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION durable_now() RETURNS timestamptz \
         LANGUAGE sql STABLE PARALLEL SAFE \
         AS 'SELECT now() + {offset_ms}::int8 * interval ''1 millisecond'''"
    )
}

/// Makes `durable_now()` answer `now()` plus `offset_ms`, in the first schema of the pool's
/// `search_path` (where the migrations created it). Plans that inlined the old definition
/// are invalidated by PostgreSQL.
pub(crate) async fn set_durable_now(pool: &PgPool, offset_ms: i64) -> Result<()> {
    let pool = pool.clone();
    detached("advance the clock", async move {
        sqlx::query(sqlx::AssertSqlSafe(definition(offset_ms)))
            .execute(&pool)
            .await
            .map_err(Error::db("advance the clock"))?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_definition_keeps_the_migrations_shape() {
        let text = super::definition(1500);
        assert!(text.contains("LANGUAGE sql STABLE"), "{text}");
        assert!(text.contains("now() + 1500::int8"), "{text}");
    }
}
