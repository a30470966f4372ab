//! Problems only the operator can fix (a wrong app secret, an app not Live): one row per kind,
//! however many connections ran into it, so a configuration mistake never shows up as every
//! account holder's fault.

use serde::Serialize;

use super::{DbError, Ex, on_pool};
use crate::clock::UnixSeconds;
use crate::meta::OperatorProblem;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Problem {
    /// `<family>:<problem>`, e.g. `facebook:app_credentials`.
    pub kind: String,
    /// The last Meta error behind it (scrubbed of tokens).
    pub message: String,
    pub meta_code: Option<i64>,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub occurrences: i64,
    pub resolved_at: Option<i64>,
}

impl Problem {
    /// The app family (`instagram`, `facebook`) and the problem.
    pub fn parts(&self) -> (&str, Option<OperatorProblem>) {
        let (family, problem) = self.kind.split_once(':').unwrap_or(("", &self.kind));
        (family, OperatorProblem::parse(problem))
    }
}

/// Records that `family`'s app has `problem` (reopening it if it was resolved).
pub async fn record(
    db: impl Into<Ex<'_>>,
    family: &str,
    problem: OperatorProblem,
    message: &str,
    meta_code: Option<i64>,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO operator_problems (kind, message, meta_code, first_seen_at,
            last_seen_at) VALUES ($1, $2, $3, $4, $4)
        ON CONFLICT (kind) DO UPDATE SET message = excluded.message,
            meta_code = excluded.meta_code, last_seen_at = excluded.last_seen_at,
            first_seen_at = CASE WHEN operator_problems.resolved_at IS NULL
                THEN operator_problems.first_seen_at ELSE excluded.first_seen_at END,
            occurrences = CASE WHEN operator_problems.resolved_at IS NULL
                THEN operator_problems.occurrences + 1 ELSE 1 END,
            resolved_at = NULL";
    let kind = format!("{family}:{}", problem.as_str());
    on_pool!(db, conn => sqlx::query(SQL).bind(kind).bind(message).bind(meta_code).bind(now).execute(conn).await.map(|_| ()))?;
    Ok(())
}

/// A call for `family` worked: its app's problems are over.
pub async fn resolve_family(
    db: impl Into<Ex<'_>>,
    family: &str,
    now: UnixSeconds,
) -> Result<u64, DbError> {
    const SQL: &str = "UPDATE operator_problems SET resolved_at = $1
        WHERE resolved_at IS NULL AND kind LIKE $2";
    let n = on_pool!(db, conn => sqlx::query(SQL).bind(now).bind(format!("{family}:%")).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n)
}

/// Problems not resolved yet, oldest first.
pub async fn open(db: impl Into<Ex<'_>>) -> Result<Vec<Problem>, DbError> {
    const SQL: &str = "SELECT kind, message, meta_code, first_seen_at, last_seen_at, occurrences,
        resolved_at FROM operator_problems WHERE resolved_at IS NULL ORDER BY first_seen_at, kind";
    Ok(on_pool!(db, conn => sqlx::query_as(SQL).fetch_all(conn).await)?)
}
