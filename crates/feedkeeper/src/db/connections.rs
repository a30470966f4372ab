//! Connected Instagram accounts: profile, sealed token, and health.
//!
//! Every read that serves a dashboard user goes through an `*_owned` function that filters by
//! owner, so one user can never load another's connection. Status changes are made by the
//! lifecycle module, which also writes the audit log; this file only stores.

use serde::Serialize;

use super::{DbError, Ex, Tx, on_pool};
use crate::clock::UnixSeconds;
use crate::config::DatabaseKind;
use crate::ids::{ConnectionId, UserId};

/// How the account was connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginKind {
    /// Instagram API with Instagram Login: a 60-day token we refresh.
    Instagram,
    /// Business connection with Facebook Login: a Page token that does not expire.
    Facebook,
}

impl LoginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginKind::Instagram => "instagram",
            LoginKind::Facebook => "facebook",
        }
    }
}

impl TryFrom<String> for LoginKind {
    type Error = String;
    /// A stored value we do not know fails the row's load (never silently becomes another kind).
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "instagram" => Ok(LoginKind::Instagram),
            "facebook" => Ok(LoginKind::Facebook),
            _ => Err(format!(
                "unknown login kind {s:?} in connections.login_kind"
            )),
        }
    }
}

/// A connection's health (see "Connection lifecycle" in DESIGN.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    /// Transient trouble; returns to `Active` by itself.
    Degraded,
    /// Only a new login by the account holder fixes it; `reason` says why.
    NeedsReconnect,
}

impl Status {
    /// Every status, in the order they are listed.
    pub const ALL: [Status; 3] = [Status::Active, Status::Degraded, Status::NeedsReconnect];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Degraded => "degraded",
            Status::NeedsReconnect => "needs_reconnect",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "degraded" => Some(Status::Degraded),
            "needs_reconnect" => Some(Status::NeedsReconnect),
            _ => None,
        }
    }
}

impl TryFrom<String> for Status {
    type Error = String;
    /// A stored status we do not know fails the row's load: taking it for `active` would hide a
    /// broken connection.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Status::parse(&s).ok_or_else(|| format!("unknown status {s:?} in connections.status"))
    }
}

/// A stored connection. `token_sealed` is ciphertext; it never leaves the server.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Connection {
    pub id: ConnectionId,
    pub owner_id: UserId,
    pub ig_user_id: String,
    pub app_scoped_id: Option<String>,
    pub fb_user_id: Option<String>,
    pub username: String,
    pub display_name: Option<String>,
    pub account_type: Option<String>,
    pub profile_picture_url: Option<String>,
    #[sqlx(try_from = "String")]
    login_kind: LoginKind,
    pub fb_page_id: Option<String>,
    pub fb_page_name: Option<String>,
    pub token_sealed: Option<String>,
    pub token_issued_at: Option<i64>,
    pub token_expires_at: Option<i64>,
    pub data_access_expires_at: Option<i64>,
    #[sqlx(try_from = "String")]
    status: Status,
    pub reason: Option<String>,
    pub status_changed_at: i64,
    pub degraded_since: Option<i64>,
    pub consecutive_failures: i64,
    pub backoff_until: Option<i64>,
    pub last_refresh_at: Option<i64>,
    pub last_check_at: Option<i64>,
    pub last_sync_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_code: Option<i64>,
    pub last_error_subcode: Option<i64>,
    pub last_error_at: Option<i64>,
    pub deauthorized_at: Option<i64>,
    pub data_purged_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Bumped by every write about the connection's token or health; fenced writes compare it.
    pub version: i64,
    /// Made through a client link: the link's label and the client's email (copied from it).
    pub client_label: Option<String>,
    pub client_email: Option<String>,
}

impl Connection {
    pub fn login_kind(&self) -> LoginKind {
        self.login_kind
    }
    pub fn status(&self) -> Status {
        self.status
    }
    /// What Meta's `signed_request` callbacks may call this person.
    pub fn meta_user_ids(&self) -> impl Iterator<Item = &str> {
        [
            Some(&self.ig_user_id),
            self.app_scoped_id.as_ref(),
            self.fb_user_id.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
    }
}

const COLUMNS: &str = "id, owner_id, ig_user_id, app_scoped_id, fb_user_id, username, display_name,
    account_type, profile_picture_url, login_kind, fb_page_id, fb_page_name, token_sealed,
    token_issued_at, token_expires_at, data_access_expires_at, status, reason, status_changed_at,
    degraded_since, consecutive_failures, backoff_until, last_refresh_at, last_check_at,
    last_sync_at, last_error, last_error_code, last_error_subcode, last_error_at, deauthorized_at,
    data_purged_at, created_at, updated_at, version, client_label, client_email";

/// What a completed login gives us about the account.
#[derive(Clone, Debug)]
pub struct LoginResult {
    pub owner_id: UserId,
    pub ig_user_id: String,
    pub app_scoped_id: Option<String>,
    pub fb_user_id: Option<String>,
    pub username: String,
    pub display_name: Option<String>,
    pub account_type: Option<String>,
    pub profile_picture_url: Option<String>,
    pub login_kind: LoginKind,
    pub fb_page_id: Option<String>,
    pub fb_page_name: Option<String>,
    pub token_issued_at: i64,
    pub token_expires_at: Option<i64>,
    pub data_access_expires_at: Option<i64>,
    /// The client link the login came through (label and client email), if any. A later login
    /// without a link keeps what an earlier one recorded.
    pub client: Option<ClientOrigin>,
}

/// The client link a connection was made through.
#[derive(Clone, Debug, Default)]
pub struct ClientOrigin {
    pub label: String,
    pub email: Option<String>,
}

/// How a transaction holds the connection rows it works on. Taking them is the first statement
/// of every transaction about a connection (the lock order in ARCHITECTURE.md): two writers
/// about one connection then queue on its row instead of deadlocking on the rows they touch
/// after it. On SQLite the transaction's write lock already serialises writers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLock {
    /// The row is changed but neither deleted nor re-keyed (`FOR NO KEY UPDATE`: rows that
    /// reference it, such as widgets, may still be written meanwhile).
    Change,
    /// The row is deleted (`FOR UPDATE`).
    Delete,
}

fn lock_clause(kind: DatabaseKind, mode: RowLock) -> &'static str {
    match (kind, mode) {
        (DatabaseKind::Sqlite, _) => "",
        (DatabaseKind::Postgres, RowLock::Change) => "FOR NO KEY UPDATE",
        (DatabaseKind::Postgres, RowLock::Delete) => "FOR UPDATE",
    }
}

/// Locks connection `id` for the rest of `tx` and reads it; `None` when it does not exist (or
/// was deleted by the transaction this one waited for).
pub async fn lock(
    tx: &mut Tx,
    id: ConnectionId,
    mode: RowLock,
) -> Result<Option<Connection>, DbError> {
    let ex: Ex<'_> = tx.into();
    let sql = format!(
        "SELECT {COLUMNS} FROM connections WHERE id = $1 {}",
        lock_clause(ex.kind(), mode)
    );
    Ok(on_pool!(ex, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
}

/// Locks the owner's connection for an Instagram account, if there is one (a reconnect).
pub async fn lock_by_ig_user(
    tx: &mut Tx,
    owner: UserId,
    ig_user_id: &str,
) -> Result<Option<Connection>, DbError> {
    let ex: Ex<'_> = tx.into();
    let sql = format!(
        "SELECT {COLUMNS} FROM connections WHERE owner_id = $1 AND ig_user_id = $2 {}",
        lock_clause(ex.kind(), RowLock::Change)
    );
    Ok(
        on_pool!(ex, pool => sqlx::query_as(&sql).bind(owner).bind(ig_user_id).fetch_optional(pool).await)?,
    )
}

/// The connections a Meta callback about `$1` (a person, or a Page) refers to: the one condition
/// of [`find_by_meta_user`] and [`lock_by_meta_user`].
const NAMED_BY_META_USER: &str =
    "ig_user_id = $1 OR app_scoped_id = $1 OR fb_user_id = $1 OR fb_page_id = $1";

/// Locks, for deleting, every connection a Meta callback about `meta_user_id` refers to (see
/// [`find_by_meta_user`]), in ascending id order: the order every transaction about several
/// connections takes them in.
pub async fn lock_by_meta_user(
    tx: &mut Tx,
    meta_user_id: &str,
) -> Result<Vec<Connection>, DbError> {
    let ex: Ex<'_> = tx.into();
    let sql = format!(
        "SELECT {COLUMNS} FROM connections WHERE {NAMED_BY_META_USER} ORDER BY id {}",
        lock_clause(ex.kind(), RowLock::Delete)
    );
    Ok(on_pool!(ex, pool => sqlx::query_as(&sql).bind(meta_user_id).fetch_all(pool).await)?)
}

/// Finds the owner's connection for an Instagram account, if any.
pub async fn find_by_ig_user(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    ig_user_id: &str,
) -> Result<Option<Connection>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM connections WHERE owner_id = $1 AND ig_user_id = $2");
    Ok(
        on_pool!(db, pool => sqlx::query_as(&sql).bind(owner).bind(ig_user_id).fetch_optional(pool).await)?,
    )
}

/// Creates the connection, or — when the owner already has this Instagram account — updates it
/// in place (same id, so widgets keep working). The token is sealed by the caller for the id it
/// gets back, so it is stored in a second step ([`store_token`]).
pub async fn upsert_from_login(
    db: impl Into<Ex<'_>>,
    login: &LoginResult,
    now: UnixSeconds,
) -> Result<Connection, DbError> {
    let sql = format!(
        "INSERT INTO connections (owner_id, ig_user_id, app_scoped_id, fb_user_id, username,
            display_name, account_type, profile_picture_url, login_kind, fb_page_id, fb_page_name,
            token_issued_at, token_expires_at, data_access_expires_at, status, status_changed_at,
            created_at, updated_at, client_label, client_email)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'active', $15, $15, $15,
            $16, $17)
         ON CONFLICT (owner_id, ig_user_id) DO UPDATE SET
            app_scoped_id = COALESCE(excluded.app_scoped_id, connections.app_scoped_id),
            fb_user_id = COALESCE(excluded.fb_user_id, connections.fb_user_id),
            username = excluded.username, display_name = excluded.display_name,
            account_type = excluded.account_type, profile_picture_url = excluded.profile_picture_url,
            login_kind = excluded.login_kind, fb_page_id = excluded.fb_page_id,
            fb_page_name = excluded.fb_page_name, token_issued_at = excluded.token_issued_at,
            token_expires_at = excluded.token_expires_at,
            data_access_expires_at = excluded.data_access_expires_at,
            client_label = COALESCE(excluded.client_label, connections.client_label),
            client_email = CASE WHEN excluded.client_label IS NULL THEN connections.client_email
                ELSE excluded.client_email END,
            updated_at = excluded.updated_at, version = connections.version + 1
         RETURNING {COLUMNS}"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql)
        .bind(login.owner_id)
        .bind(&login.ig_user_id)
        .bind(&login.app_scoped_id)
        .bind(&login.fb_user_id)
        .bind(&login.username)
        .bind(&login.display_name)
        .bind(&login.account_type)
        .bind(&login.profile_picture_url)
        .bind(login.login_kind.as_str())
        .bind(&login.fb_page_id)
        .bind(&login.fb_page_name)
        .bind(login.token_issued_at)
        .bind(login.token_expires_at)
        .bind(login.data_access_expires_at)
        .bind(now)
        .bind(login.client.as_ref().map(|c| &c.label))
        .bind(login.client.as_ref().and_then(|c| c.email.as_ref()))
        .fetch_one(pool)
        .await)?)
}

/// Stores a freshly sealed token with its times.
pub async fn store_token(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    sealed: &str,
    issued_at: UnixSeconds,
    expires_at: Option<UnixSeconds>,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE connections SET token_sealed = $1, token_issued_at = $2,
        token_expires_at = $3, data_purged_at = NULL, updated_at = $4 WHERE id = $5";
    on_pool!(db, pool => sqlx::query(SQL).bind(sealed).bind(issued_at).bind(expires_at).bind(now).bind(id).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Any connection by id (workers, callbacks). Dashboard code uses [`get_owned`].
pub async fn get(db: impl Into<Ex<'_>>, id: ConnectionId) -> Result<Connection, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM connections WHERE id = $1");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(id).fetch_one(pool).await)?)
}

/// The connection if `owner` owns it; `NotFound` otherwise (the same answer as a missing one, so
/// ids of other tenants reveal nothing).
pub async fn get_owned(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    id: ConnectionId,
) -> Result<Connection, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM connections WHERE id = $1 AND owner_id = $2");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(id).bind(owner).fetch_one(pool).await)?)
}

/// The owner's connections, by username.
pub async fn list_owned(db: impl Into<Ex<'_>>, owner: UserId) -> Result<Vec<Connection>, DbError> {
    let sql =
        format!("SELECT {COLUMNS} FROM connections WHERE owner_id = $1 ORDER BY username, id");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(owner).fetch_all(pool).await)?)
}

/// Up to `limit` of the owner's connections with ids above `after`, by id (the API's pages).
pub async fn page_owned(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    after: i64,
    limit: i64,
) -> Result<Vec<Connection>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM connections WHERE owner_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql)
        .bind(owner)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await)?)
}

/// Every connection (operator CLI).
pub async fn list_all(db: impl Into<Ex<'_>>) -> Result<Vec<Connection>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM connections ORDER BY id");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).fetch_all(pool).await)?)
}

/// The other connections made with `c`'s login (any tenant): the same Facebook person's other
/// Pages, or the same Instagram account connected elsewhere; only those with a token that are
/// not already known to need reconnecting for the same reason (so N Pages breaking together
/// cost N checks, not N²).
pub async fn siblings(db: impl Into<Ex<'_>>, c: &Connection) -> Result<Vec<ConnectionId>, DbError> {
    const SQL: &str = "SELECT id FROM connections
        WHERE id <> $1 AND token_sealed IS NOT NULL
          AND (ig_user_id = $2 OR ($3 IS NOT NULL AND fb_user_id = $3))
          AND NOT (status = $4 AND reason IS NOT NULL AND reason = $5)
        ORDER BY id";
    Ok(on_pool!(db, pool => sqlx::query_scalar(SQL)
        .bind(c.id)
        .bind(&c.ig_user_id)
        .bind(c.fb_user_id.as_deref())
        .bind(Status::NeedsReconnect.as_str())
        .bind(c.reason.as_deref())
        .fetch_all(pool)
        .await)?)
}

/// Connections a Meta callback about `meta_user_id` (a person, or a Page) refers to (any tenant: it is about the
/// Instagram/Facebook person, wherever they are connected).
pub async fn find_by_meta_user(
    db: impl Into<Ex<'_>>,
    meta_user_id: &str,
) -> Result<Vec<Connection>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM connections WHERE {NAMED_BY_META_USER} ORDER BY id");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(meta_user_id).fetch_all(pool).await)?)
}

/// The health fields the lifecycle module sets together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub status: Status,
    pub reason: Option<String>,
    pub status_changed_at: i64,
    pub degraded_since: Option<i64>,
    pub consecutive_failures: i64,
    pub backoff_until: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_code: Option<i64>,
    pub last_error_subcode: Option<i64>,
    pub last_error_at: Option<i64>,
}

impl Health {
    pub fn of(c: &Connection) -> Health {
        Health {
            status: c.status(),
            reason: c.reason.clone(),
            status_changed_at: c.status_changed_at,
            degraded_since: c.degraded_since,
            consecutive_failures: c.consecutive_failures,
            backoff_until: c.backoff_until,
            last_error: c.last_error.clone(),
            last_error_code: c.last_error_code,
            last_error_subcode: c.last_error_subcode,
            last_error_at: c.last_error_at,
        }
    }
}

pub async fn store_health(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    h: &Health,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE connections SET status = $1, reason = $2, status_changed_at = $3,
        degraded_since = $4, consecutive_failures = $5, backoff_until = $6, last_error = $7,
        last_error_code = $8, last_error_subcode = $9, last_error_at = $10, updated_at = $11,
        version = version + 1 WHERE id = $12";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(h.status.as_str())
        .bind(&h.reason)
        .bind(h.status_changed_at)
        .bind(h.degraded_since)
        .bind(h.consecutive_failures)
        .bind(h.backoff_until)
        .bind(&h.last_error)
        .bind(h.last_error_code)
        .bind(h.last_error_subcode)
        .bind(h.last_error_at)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Records a successful call that proved the token alive (`last_check_at`), and a refresh.
pub async fn mark_checked(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    refreshed: bool,
    data_access_expires_at: Option<i64>,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE connections SET last_check_at = $1,
        last_refresh_at = CASE WHEN $2 THEN $1 ELSE last_refresh_at END,
        data_access_expires_at = COALESCE($3, data_access_expires_at), updated_at = $1
        WHERE id = $4";
    on_pool!(db, pool => sqlx::query(SQL).bind(now).bind(refreshed).bind(data_access_expires_at).bind(id).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// A renewed token to store with a check's result.
#[derive(Clone, Copy, Debug)]
pub struct RenewedToken<'a> {
    pub sealed: &'a str,
    pub issued_at: UnixSeconds,
    pub expires_at: Option<UnixSeconds>,
}

/// What one check found, written in one statement.
#[derive(Clone, Debug)]
pub struct CheckResult<'a> {
    pub health: &'a Health,
    /// Set when the check renewed the token.
    pub renewed: Option<RenewedToken<'a>>,
    /// The token was proven alive (`last_check_at` moves).
    pub alive: bool,
    pub data_access_expires_at: Option<UnixSeconds>,
    /// A new issue time for the stored token (Meta says it was renewed moments ago).
    pub token_issued_at: Option<UnixSeconds>,
}

/// Stores a check's result if the row is still at `expected_version` (nobody reconnected,
/// refreshed or changed it since the checker read it), bumping the version. Returns `false`, and
/// changes nothing, when it is not: the checker's view is stale.
pub async fn store_check_result(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    expected_version: i64,
    r: &CheckResult<'_>,
    now: UnixSeconds,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE connections SET status = $1, reason = $2, status_changed_at = $3,
        degraded_since = $4, consecutive_failures = $5, backoff_until = $6, last_error = $7,
        last_error_code = $8, last_error_subcode = $9, last_error_at = $10,
        token_sealed = COALESCE($11, token_sealed),
        token_issued_at = CASE WHEN $11 IS NULL THEN COALESCE($19, token_issued_at) ELSE $12 END,
        token_expires_at = CASE WHEN $11 IS NULL THEN token_expires_at ELSE $13 END,
        last_refresh_at = CASE WHEN $11 IS NULL THEN last_refresh_at ELSE $15 END,
        last_check_at = CASE WHEN $14 THEN $15 ELSE last_check_at END,
        data_access_expires_at = COALESCE($16, data_access_expires_at),
        updated_at = $15, version = version + 1
        WHERE id = $17 AND version = $18";
    let h = r.health;
    let n = on_pool!(db, conn => sqlx::query(SQL)
        .bind(h.status.as_str())
        .bind(&h.reason)
        .bind(h.status_changed_at)
        .bind(h.degraded_since)
        .bind(h.consecutive_failures)
        .bind(h.backoff_until)
        .bind(&h.last_error)
        .bind(h.last_error_code)
        .bind(h.last_error_subcode)
        .bind(h.last_error_at)
        .bind(r.renewed.map(|t| t.sealed))
        .bind(r.renewed.map(|t| t.issued_at))
        .bind(r.renewed.and_then(|t| t.expires_at))
        .bind(r.alive)
        .bind(now)
        .bind(r.data_access_expires_at)
        .bind(id)
        .bind(expected_version)
        .bind(r.token_issued_at)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Re-seals a connection's token under the current key (key rotation), if the row still holds
/// exactly `old_sealed`. Returns whether it did.
pub async fn reseal_token(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    old_sealed: &str,
    new_sealed: &str,
) -> Result<bool, DbError> {
    const SQL: &str =
        "UPDATE connections SET token_sealed = $1 WHERE id = $2 AND token_sealed = $3";
    let n = on_pool!(db, conn => sqlx::query(SQL).bind(new_sealed).bind(id).bind(old_sealed).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Takes the connection's manual-check slot at `now` unless one was taken within `cooldown`
/// seconds; atomic, so parallel requests get one check between them. Returns the time of the
/// earlier check when refused.
pub async fn take_manual_check(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    now: UnixSeconds,
    cooldown: i64,
) -> Result<Option<i64>, DbError> {
    let mut ex: Ex = db.into();
    const SQL: &str = "UPDATE connections SET manual_check_at = $1
        WHERE id = $2 AND (manual_check_at IS NULL OR manual_check_at <= $3 OR manual_check_at > $1)";
    let n = on_pool!(ex.re(), conn => sqlx::query(SQL).bind(now).bind(id).bind(now - cooldown).execute(conn).await.map(|r| r.rows_affected()))?;
    if n == 1 {
        return Ok(None);
    }
    const LAST: &str = "SELECT manual_check_at FROM connections WHERE id = $1";
    let last: Option<i64> =
        on_pool!(ex, conn => sqlx::query_scalar(LAST).bind(id).fetch_one(conn).await)?;
    Ok(Some(last.unwrap_or(now)))
}

/// Up to `limit` connections whose sealed token does not start with `current_prefix` (sealed
/// under an older key or format), as `(id, sealed)`.
pub async fn sealed_not_under(
    db: impl Into<Ex<'_>>,
    current_prefix: &str,
    limit: i64,
) -> Result<Vec<(ConnectionId, String)>, DbError> {
    const SQL: &str = "SELECT id, token_sealed FROM connections
        WHERE token_sealed IS NOT NULL AND substr(token_sealed, 1, length($1)) <> $1
        ORDER BY id LIMIT $2";
    Ok(
        on_pool!(db, conn => sqlx::query_as(SQL).bind(current_prefix).bind(limit).fetch_all(conn).await)?,
    )
}

/// Meta said the user removed the app.
pub async fn mark_deauthorized(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE connections SET deauthorized_at = COALESCE(deauthorized_at, $1),
        updated_at = $1 WHERE id = $2";
    on_pool!(db, pool => sqlx::query(SQL).bind(now).bind(id).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// A reconnect after app removal: the data stays.
pub async fn clear_deauthorization(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str =
        "UPDATE connections SET deauthorized_at = NULL, updated_at = $1 WHERE id = $2";
    on_pool!(db, pool => sqlx::query(SQL).bind(now).bind(id).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Deauthorized connections whose grace period ended before `cutoff` and whose data remains.
pub async fn due_for_purge(
    db: impl Into<Ex<'_>>,
    cutoff: UnixSeconds,
) -> Result<Vec<Connection>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM connections
         WHERE deauthorized_at IS NOT NULL AND deauthorized_at <= $1 AND data_purged_at IS NULL
         ORDER BY id"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(cutoff).fetch_all(pool).await)?)
}

/// Deletes what we hold of the account (token and profile details), keeping a stub row so its
/// owner sees what happened. Posts and images, once stored, go with it. (The caller records the
/// change of the widgets showing it, so every node drops them.)
pub async fn purge_data(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE connections SET token_sealed = NULL, token_expires_at = NULL,
        profile_picture_url = NULL, display_name = NULL, data_purged_at = $1, updated_at = $1,
        version = version + 1 WHERE id = $2";
    on_pool!(db, pool => sqlx::query(SQL).bind(now).bind(id).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Records a sync: when, and the account's current username and name (an account renamed on
/// Instagram shows its new name). Not a token or health write: the version stays.
pub async fn mark_synced(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    username: &str,
    display_name: Option<&str>,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE connections SET last_sync_at = $1, username = $2,
        display_name = $3, updated_at = $1 WHERE id = $4";
    on_pool!(db, pool => sqlx::query(SQL).bind(now).bind(username).bind(display_name).bind(id).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Removes the connection and everything hanging off it (audit log, incidents, posts). Widgets
/// that showed it keep their address and show nothing until another account is chosen (the
/// caller records their change, so every node drops what they showed).
pub async fn delete(db: impl Into<Ex<'_>>, id: ConnectionId) -> Result<bool, DbError> {
    const SQL: &str = "DELETE FROM connections WHERE id = $1";
    let n = on_pool!(db, pool => sqlx::query(SQL).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

#[cfg(test)]
impl Connection {
    /// A connection for unit tests of pure rules.
    pub fn example(kind: LoginKind, status: Status) -> Connection {
        Connection {
            id: ConnectionId(1),
            owner_id: UserId(1),
            ig_user_id: "17841400000000001".into(),
            app_scoped_id: None,
            fb_user_id: None,
            username: "example".into(),
            display_name: None,
            account_type: Some("BUSINESS".into()),
            profile_picture_url: None,
            login_kind: kind,
            fb_page_id: None,
            fb_page_name: None,
            token_sealed: Some("v1.k.x".into()),
            token_issued_at: Some(0),
            token_expires_at: None,
            data_access_expires_at: None,
            status,
            reason: None,
            status_changed_at: 0,
            degraded_since: None,
            consecutive_failures: 0,
            backoff_until: None,
            last_refresh_at: None,
            last_check_at: None,
            last_sync_at: None,
            last_error: None,
            last_error_code: None,
            last_error_subcode: None,
            last_error_at: None,
            deauthorized_at: None,
            data_purged_at: None,
            created_at: 0,
            updated_at: 0,
            version: 0,
            client_label: None,
            client_email: None,
        }
    }

    pub fn set_status(&mut self, status: Status) {
        self.status = status;
    }
}
