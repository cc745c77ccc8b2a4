//! Lots, their numbered slots and the employees who work there.

use chrono::{DateTime, Utc};

use crate::exec::{Exec, Stmt};
use crate::model::ACTIVE_SQL;
use crate::{DbError, Employee, Lot, Slot, SlotInfo};

/// A lot with numbered slots `(number, car_wash)`; answers its id.
pub async fn insert_lot(
    c: &mut impl Exec,
    owner_id: i64,
    name: &str,
    price_per_hour_cents: i64,
    slots: &[(i64, bool)],
) -> Result<i64, DbError> {
    let lot_id: i64 = c
        .scalar(
            Stmt::new(
                "INSERT INTO lots (owner_id, name, price_per_hour_cents) VALUES ($1, $2, $3) \
                 RETURNING id AS v",
            )
            .bind(owner_id)
            .bind(name)
            .bind(price_per_hour_cents),
        )
        .await?;
    for (number, car_wash) in slots {
        c.execute(
            Stmt::new("INSERT INTO slots (lot_id, number, car_wash) VALUES ($1, $2, $3)")
                .bind(lot_id)
                .bind(*number)
                .bind(*car_wash),
        )
        .await?;
    }
    Ok(lot_id)
}

/// Adds an employee to a lot; `false` when they already worked there.
pub async fn insert_lot_employee(
    c: &mut impl Exec,
    lot_id: i64,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let added = c
        .execute(
            Stmt::new(
                "INSERT INTO lot_employees (lot_id, user_id, assigned_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(lot_id)
            .bind(user_id)
            .bind(now.timestamp_millis()),
        )
        .await?;
    Ok(added == 1)
}

pub async fn works_at(c: &mut impl Exec, user_id: i64, lot_id: i64) -> Result<bool, DbError> {
    c.scalar(
        Stmt::new(
            "SELECT EXISTS (SELECT 1 FROM lot_employees WHERE lot_id = $1 AND user_id = $2) AS v",
        )
        .bind(lot_id)
        .bind(user_id),
    )
    .await
}

/// Lots with their owner, employees and slots (a slot is `occupied` when an active booking's
/// window contains `now`); `only_id` picks one lot, `owner` one owner's lots.
pub async fn lots(
    c: &mut impl Exec,
    only_id: Option<i64>,
    owner: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Vec<Lot>, DbError> {
    let rows = c
        .fetch_all(
            Stmt::new(
                "SELECT l.id, l.owner_id, u.name AS owner_name, l.name, l.price_per_hour_cents \
                 FROM lots l JOIN users u ON u.id = l.owner_id \
                 WHERE ($1 IS NULL OR l.id = $1) AND ($2 IS NULL OR l.owner_id = $2) ORDER BY l.id",
            )
            .bind(only_id)
            .bind(owner),
        )
        .await?;
    let slots_sql = format!(
        "SELECT s.id, s.number, s.car_wash, EXISTS (SELECT 1 FROM bookings b WHERE b.slot_id = s.id \
             AND b.status IN {ACTIVE_SQL} AND b.start_at_ms <= $2 AND b.end_at_ms > $2) AS occupied \
         FROM slots s WHERE s.lot_id = $1 ORDER BY s.number"
    );
    let mut lots = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.get("id")?;
        let employees = c
            .fetch_all(
                Stmt::new(
                    "SELECT u.id, u.name FROM lot_employees e JOIN users u ON u.id = e.user_id \
                     WHERE e.lot_id = $1 ORDER BY u.id",
                )
                .bind(id),
            )
            .await?
            .iter()
            .map(|r| {
                Ok(Employee {
                    id: r.get("id")?,
                    name: r.get("name")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        let slots = c
            .fetch_all(Stmt::new(&slots_sql).bind(id).bind(now.timestamp_millis()))
            .await?
            .iter()
            .map(|r| {
                Ok(Slot {
                    id: r.get("id")?,
                    number: r.get("number")?,
                    car_wash: r.get("car_wash")?,
                    occupied: r.get("occupied")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        lots.push(Lot {
            id,
            owner_id: row.get("owner_id")?,
            owner_name: row.get("owner_name")?,
            name: row.get("name")?,
            price_per_hour_cents: row.get("price_per_hour_cents")?,
            employees,
            slots,
        });
    }
    Ok(lots)
}

pub async fn slot_info(c: &mut impl Exec, slot_id: i64) -> Result<Option<SlotInfo>, DbError> {
    let row = c
        .fetch_optional(
            Stmt::new(
                "SELECT l.price_per_hour_cents, s.car_wash FROM slots s JOIN lots l ON l.id = s.lot_id \
                 WHERE s.id = $1",
            )
            .bind(slot_id),
        )
        .await?;
    match row {
        Some(r) => Ok(Some(SlotInfo {
            price_per_hour_cents: r.get("price_per_hour_cents")?,
            car_wash: r.get("car_wash")?,
        })),
        None => Ok(None),
    }
}
