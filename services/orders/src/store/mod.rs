//! Persistence in the `orders` schema. Every function takes the caller's
//! connection, so a state change and its outbox event commit together.

pub mod bulk;
pub mod ingest;
pub mod orders;
pub mod placement;
pub mod projections;
pub mod settlement;
pub mod shortage;

pub use orders::*;
pub use placement::*;
pub use projections::*;
pub use settlement::*;
pub use shortage::*;

/// Who may see which orders, as SQL parameters `($1 kind, $2 lo, $3 hi,
/// $4 org)`: `all`, `region`, `hospital`, `distributor`, `integrator`, `none`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub kind: &'static str,
    pub lo: i32,
    pub hi: i32,
    pub org: uuid::Uuid,
}

impl Scope {
    /// `sql` with the scope bound as `$1..=$4`; the caller binds the rest.
    pub fn query(
        &self,
        sql: String,
    ) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.kind)
            .bind(self.lo)
            .bind(self.hi)
            .bind(self.org)
    }
}
