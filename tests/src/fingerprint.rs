//! What "no state changed" means: every business table of every service
//! schema, as a row count and a hash of its rows. Left out is what records
//! deliveries rather than business: the inbox, the dead-letter queue, timers
//! and migrations; the outbox counts by its events (not its delivery
//! columns); and the trail of refused integrator messages (their
//! `ingest_messages` rows, `orders.ingest.rejected` events, and the
//! `dlq.dead_letter` events announcing unreadable ones), which exists
//! precisely so a refusal is visible.

use std::collections::BTreeMap;

use sqlx::PgPool;
use vbp_contracts::Service;

const BOOKKEEPING: &[&str] = &["inbox", "dlq", "timers", "_sqlx_migrations"];

/// Per `schema.table`: (rows, md5 of the sorted rows' md5s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(pub BTreeMap<String, (i64, String)>);

fn rows_of(schema: &str, table: &str) -> String {
    match table {
        "outbox" => format!(
            "(SELECT id, event_type, payload FROM {schema}.outbox \
             WHERE event_type NOT IN ('orders.ingest.rejected', 'dlq.dead_letter'))"
        ),
        "ingest_messages" => format!(
            "(SELECT integrator, external_id, event, outcome FROM {schema}.ingest_messages \
             WHERE outcome <> 'rejected')"
        ),
        _ => format!("{schema}.{table}"),
    }
}

impl Fingerprint {
    pub async fn take(pool: &PgPool) -> Self {
        let schemas: Vec<String> = Service::BACKENDS
            .iter()
            .map(|s| vbp_platform::db::schema_name(*s).to_owned())
            .collect();
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_schema::text, table_name::text FROM information_schema.tables \
             WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE' \
             ORDER BY 1, 2",
        )
        .bind(&schemas)
        .fetch_all(pool)
        .await
        .expect("list tables");
        let mut out = BTreeMap::new();
        for (schema, table) in tables {
            if BOOKKEEPING.contains(&table.as_str()) {
                continue;
            }
            if table == "outbox" {
                // Per event type, so a change says which events appeared.
                let sql = format!(
                    "SELECT event_type, count(*), md5(string_agg(h, '' ORDER BY h)) \
                     FROM (SELECT event_type, md5(t::text) AS h FROM {} t) x GROUP BY event_type",
                    rows_of(&schema, &table)
                );
                let rows: Vec<(String, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|e| panic!("fingerprint of {schema}.outbox: {e}"));
                for (event_type, n, hash) in rows {
                    out.insert(format!("{schema}.outbox[{event_type}]"), (n, hash));
                }
                continue;
            }
            let sql = format!(
                "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') \
                 FROM (SELECT md5(t::text) AS h FROM {} t) x",
                rows_of(&schema, &table)
            );
            let row: (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await
                .unwrap_or_else(|e| panic!("fingerprint of {schema}.{table}: {e}"));
            out.insert(format!("{schema}.{table}"), row);
        }
        Self(out)
    }

    /// The tables whose rows differ from `before`, with both counts.
    pub fn changes_since(&self, before: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        for (table, now) in &self.0 {
            match before.0.get(table) {
                Some(was) if was == now => {}
                Some(was) => out.push(format!("{table}: {} rows -> {} rows", was.0, now.0)),
                None => out.push(format!("{table}: {} new rows", now.0)),
            }
        }
        for table in before.0.keys() {
            if !self.0.contains_key(table) {
                out.push(format!("{table}: gone"));
            }
        }
        out
    }

    pub fn rows(&self) -> i64 {
        self.0.values().map(|(n, _)| n).sum()
    }
}

/// Outbox rows not yet published, over every service.
pub async fn unsent_outbox(pool: &PgPool) -> i64 {
    let mut total = 0;
    for service in Service::BACKENDS {
        let schema = vbp_platform::db::schema_name(service);
        let sql = format!("SELECT count(*) FROM {schema}.outbox_pending");
        total += sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap_or(0);
    }
    total
}
