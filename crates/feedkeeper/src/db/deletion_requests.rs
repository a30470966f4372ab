//! Meta data-deletion requests we answered, looked up by confirmation code for the status page.

use super::{DbError, Ex, on_pool};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeletionRequest {
    pub confirmation_code: String,
    pub meta_user_id: String,
    pub requested_at: i64,
    pub completed_at: Option<i64>,
    pub connections_deleted: i64,
}

pub async fn insert(db: impl Into<Ex<'_>>, r: &DeletionRequest) -> Result<(), DbError> {
    const SQL: &str =
        "INSERT INTO deletion_requests (confirmation_code, meta_user_id, requested_at,
        completed_at, connections_deleted) VALUES ($1, $2, $3, $4, $5)";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(&r.confirmation_code)
        .bind(&r.meta_user_id)
        .bind(r.requested_at)
        .bind(r.completed_at)
        .bind(r.connections_deleted)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

pub async fn get(db: impl Into<Ex<'_>>, code: &str) -> Result<DeletionRequest, DbError> {
    const SQL: &str = "SELECT confirmation_code, meta_user_id, requested_at, completed_at,
        connections_deleted FROM deletion_requests WHERE confirmation_code = $1";
    Ok(on_pool!(db, pool => sqlx::query_as(SQL).bind(code).fetch_one(pool).await)?)
}
