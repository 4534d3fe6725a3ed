//! The statements that took the most database time during a measured load,
//! from `pg_stat_statements` (loaded only when the server preloads it, so a
//! plain run measures a plain server).

use sqlx::PgPool;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Statement {
    pub total_ms: f64,
    pub calls: i64,
    pub rows: i64,
    pub mean_ms: f64,
    pub query: String,
}

/// Creates the extension when needed and forgets what came before the load.
pub async fn reset(pool: &PgPool) -> anyhow::Result<()> {
    let preloaded: String = sqlx::query_scalar("SHOW shared_preload_libraries")
        .fetch_one(pool)
        .await?;
    anyhow::ensure!(
        preloaded.contains("pg_stat_statements"),
        "--statements needs the server to preload pg_stat_statements: run with \
         VBP_PG_SETTINGS=\"shared_preload_libraries = 'pg_stat_statements'\""
    );
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(pool)
        .await?;
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(pool)
        .await?;
    Ok(())
}

/// The `n` statements with the most total execution time since [`reset`].
pub async fn top(pool: &PgPool, n: usize) -> anyhow::Result<Vec<Statement>> {
    let rows: Vec<(f64, i64, i64, f64, String)> = sqlx::query_as(
        "SELECT total_exec_time, calls, rows, mean_exec_time, \
                regexp_replace(query, '\\s+', ' ', 'g') \
         FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1",
    )
    .bind(n as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(total_ms, calls, rows, mean_ms, query)| Statement {
            total_ms,
            calls,
            rows,
            mean_ms,
            query,
        })
        .collect())
}

/// Prints them as the load generators show figures.
pub fn print(top: &[Statement]) {
    if top.is_empty() {
        return;
    }
    println!();
    println!(
        "  {:>10} {:>9} {:>9} {:>8}  statement (most database time first)",
        "total ms", "calls", "rows", "mean ms"
    );
    for s in top {
        let q: String = s.query.chars().take(150).collect();
        println!(
            "  {:>10.0} {:>9} {:>9} {:>8.3}  {q}",
            s.total_ms, s.calls, s.rows, s.mean_ms
        );
    }
}
