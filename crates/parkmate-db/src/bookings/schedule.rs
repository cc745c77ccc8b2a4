//! The scheduler's queries. The due rows are picked by a subquery that locks them in deadline
//! order (`Dialect::lock_rows`: `FOR UPDATE` re-reads a row another pass changed meanwhile and
//! drops it), and the outer `WHERE` re-checks the locked row (PostgreSQL re-evaluates only the
//! target's own conditions when it meets a row updated since its snapshot). Only rows a statement
//! changed are returned, so each deadline fires exactly once even if two passes race.

use chrono::{DateTime, Utc};

use super::WARN_LEAD_MS;
use super::rows::ms;
use crate::exec::{Exec, Stmt};
use crate::model::ACTIVE_SQL;
use crate::{DbError, from_millis};

/// The conditions of a booking due for its 5-minute warning at `$1`: active, within 5 minutes of
/// its end, not yet warned for this end, and long enough that the warning is not due the moment
/// it was made.
fn warning_due() -> String {
    format!(
        "status IN {ACTIVE_SQL} AND end_at_ms > $1 AND end_at_ms - {WARN_LEAD_MS} <= $1 \
         AND end_at_ms - {WARN_LEAD_MS} > start_at_ms AND warned_end_at_ms IS DISTINCT FROM end_at_ms"
    )
}

/// Expires up to `limit` active bookings whose window has ended; answers their ids.
pub async fn expire_due(
    c: &mut impl Exec,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, DbError> {
    let due = format!("status IN {ACTIVE_SQL} AND end_at_ms <= $1");
    let sql = format!(
        "UPDATE bookings SET status = 'expired' WHERE id IN (SELECT id FROM bookings \
             WHERE {due} ORDER BY end_at_ms, id LIMIT $2{}) AND {due} RETURNING id",
        c.dialect().lock_rows
    );
    c.fetch_all(Stmt::new(&sql).bind(ms(now)).bind(limit))
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect()
}

/// Records the 5-minute warning for up to `limit` bookings that are due for it; answers their ids.
pub async fn warn_due(
    c: &mut impl Exec,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, DbError> {
    let due = warning_due();
    let sql = format!(
        "UPDATE bookings SET warned_end_at_ms = end_at_ms WHERE id IN (SELECT id FROM bookings \
             WHERE {due} ORDER BY end_at_ms, id LIMIT $2{}) AND {due} RETURNING id",
        c.dialect().lock_rows
    );
    c.fetch_all(Stmt::new(&sql).bind(ms(now)).bind(limit))
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect()
}

/// The earliest pending deadline: a warning not yet sent, or an end.
pub async fn next_deadline(c: &mut impl Exec) -> Result<Option<DateTime<Utc>>, DbError> {
    let sql = format!(
        "SELECT MIN(CASE WHEN warned_end_at_ms IS DISTINCT FROM end_at_ms \
                          AND end_at_ms - {WARN_LEAD_MS} > start_at_ms \
                     THEN end_at_ms - {WARN_LEAD_MS} ELSE end_at_ms END) AS v \
         FROM bookings WHERE status IN {ACTIVE_SQL}"
    );
    let next: Option<i64> = c.scalar(Stmt::new(&sql)).await?;
    Ok(next.map(from_millis))
}

/// The conditions of a request whose hold (`$2` ms) ran out at `$1`.
const LAPSE_DUE: &str = "status = 'requested' AND requested_at_ms + $2 <= $1";

/// Lapses up to `limit` requests not approved within `hold_ms` of being made; answers their ids.
/// Run after [`expire_due`]: a request whose window also ended expires instead.
pub async fn lapse_due(
    c: &mut impl Exec,
    now: DateTime<Utc>,
    hold_ms: i64,
    limit: i64,
) -> Result<Vec<i64>, DbError> {
    let sql = format!(
        "UPDATE bookings SET status = 'lapsed' WHERE id IN (SELECT id FROM bookings \
             WHERE {LAPSE_DUE} ORDER BY requested_at_ms, id LIMIT $3{}) AND {LAPSE_DUE} RETURNING id",
        c.dialect().lock_rows
    );
    c.fetch_all(Stmt::new(&sql).bind(ms(now)).bind(hold_ms).bind(limit))
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect()
}

/// When the oldest request's hold of `hold_ms` runs out.
pub async fn next_lapse(c: &mut impl Exec, hold_ms: i64) -> Result<Option<DateTime<Utc>>, DbError> {
    let next: Option<i64> = c
        .scalar(
            Stmt::new(
                "SELECT MIN(requested_at_ms) + $1 AS v FROM bookings WHERE status = 'requested'",
            )
            .bind(hold_ms),
        )
        .await?;
    Ok(next.map(from_millis))
}
