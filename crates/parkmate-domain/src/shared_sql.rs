//! The domain's SQL that reads the same on SQLite and PostgreSQL, written once.
//!
//! `sqlite.rs` and `postgres.rs` are twins: `engine.rs` dispatches every query to the function of
//! the same name in either, with the same signature. Most of those functions were the same text
//! twice, differing only in the connection and row types, and sqlx's executor bounds make a
//! function generic over `sqlx::Database` far noisier than either copy. So [`shared_queries!`]
//! stamps those functions into each engine module, typed for that engine's connection and row:
//! each statement is compiled against its own driver exactly as before, and the engine files keep
//! only what their dialects or concurrency really make different.
//!
//! Names in the body resolve in the invoking module (macro_rules hygiene covers only local
//! variables), so each engine module imports what the body uses and defines its dialect's pieces:
//! - `USERS_BY_ROLE`, `LOTS`: whole statements that differ only in typing their `NULL` parameter;
//! - `ALL_BOOKINGS`: the `WHERE` filter listing every booking (again a typed `NULL`).
//!
//! `duration_minutes` (a `u32`) is bound as `i64` on both: PostgreSQL has no unsigned type, and
//! SQLite's driver binds a `u32` as that same 64-bit integer.

/// Defines, in the invoking module, every query function both engines write alike; `$conn` and
/// `$row` are the engine's connection and row types (module docs).
macro_rules! shared_queries {
    ($conn:ty, $row:ty) => {
        // ---------------------------------------------------------------------------------------------
        // Users

        pub(crate) async fn insert_user(
            conn: &mut $conn,
            name: &str,
            email: &str,
            hash: &str,
            role: Role,
            now: DateTime<Utc>,
        ) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar(
                "INSERT INTO users (name, email, password_hash, role, created_at_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(name)
            .bind(email)
            .bind(hash)
            .bind(role.as_str())
            .bind(ms(now))
            .fetch_one(conn)
            .await
        }

        fn row_to_user(row: &$row) -> Result<User, DomainError> {
            Ok(User {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                email: row.try_get("email")?,
                role: parse_role(row.try_get("role")?)?,
            })
        }

        pub(crate) async fn user(
            conn: &mut $conn,
            id: i64,
        ) -> Result<Option<User>, DomainError> {
            let row = sqlx::query("SELECT id, name, email, role FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(conn)
                .await?;
            row.as_ref().map(row_to_user).transpose()
        }

        /// The user and their password hash, for login.
        pub(crate) async fn user_by_email(
            conn: &mut $conn,
            email: &str,
        ) -> Result<Option<(User, String)>, DomainError> {
            let row =
                sqlx::query("SELECT id, name, email, role, password_hash FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_optional(conn)
                    .await?;
            match row {
                Some(row) => Ok(Some((row_to_user(&row)?, row.try_get("password_hash")?))),
                None => Ok(None),
            }
        }

        pub(crate) async fn users(
            conn: &mut $conn,
            role: Option<Role>,
        ) -> Result<Vec<User>, DomainError> {
            let rows = sqlx::query(USERS_BY_ROLE)
                .bind(role.map(Role::as_str))
                .fetch_all(conn)
                .await?;
            rows.iter().map(row_to_user).collect()
        }

        pub(crate) async fn count_users(conn: &mut $conn) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(conn)
                .await
        }

        // ---------------------------------------------------------------------------------------------
        // Lots, slots, employees

        pub(crate) async fn insert_lot(
            conn: &mut $conn,
            owner_id: i64,
            name: &str,
            price_per_hour_cents: i64,
            slots: &[(i64, bool)],
        ) -> Result<i64, sqlx::Error> {
            let lot_id: i64 = sqlx::query_scalar(
                "INSERT INTO lots (owner_id, name, price_per_hour_cents) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(owner_id)
            .bind(name)
            .bind(price_per_hour_cents)
            .fetch_one(&mut *conn)
            .await?;
            for (number, car_wash) in slots {
                sqlx::query("INSERT INTO slots (lot_id, number, car_wash) VALUES ($1, $2, $3)")
                    .bind(lot_id)
                    .bind(number)
                    .bind(car_wash)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(lot_id)
        }

        /// Adds an employee to a lot; `false` when they already worked there.
        pub(crate) async fn insert_lot_employee(
            conn: &mut $conn,
            lot_id: i64,
            user_id: i64,
            now: DateTime<Utc>,
        ) -> Result<bool, sqlx::Error> {
            let done = sqlx::query(
                "INSERT INTO lot_employees (lot_id, user_id, assigned_at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(lot_id)
            .bind(user_id)
            .bind(ms(now))
            .execute(conn)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        pub(crate) async fn works_at(
            conn: &mut $conn,
            user_id: i64,
            lot_id: i64,
        ) -> Result<bool, sqlx::Error> {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM lot_employees WHERE lot_id = $1 AND user_id = $2)",
            )
            .bind(lot_id)
            .bind(user_id)
            .fetch_one(conn)
            .await
        }

        /// Lots with their owner, employees and slots; `owner` filters to one owner's lots.
        pub(crate) async fn lots(
            conn: &mut $conn,
            only_id: Option<i64>,
            owner: Option<i64>,
            now: DateTime<Utc>,
        ) -> Result<Vec<Lot>, DomainError> {
            let rows = sqlx::query(LOTS)
                .bind(only_id)
                .bind(owner)
                .fetch_all(&mut *conn)
                .await?;
            let mut lots = Vec::with_capacity(rows.len());
            for row in rows {
                let id: i64 = row.try_get("id")?;
                let employees = sqlx::query(
                    "SELECT u.id, u.name FROM lot_employees e JOIN users u ON u.id = e.user_id \
                     WHERE e.lot_id = $1 ORDER BY u.id",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| {
                    Ok(Employee {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                    })
                })
                .collect::<Result<Vec<_>, DomainError>>()?;
                let slots = sqlx::query(&format!(
                    "SELECT s.id, s.number, s.car_wash, EXISTS (SELECT 1 FROM bookings b WHERE b.slot_id = s.id \
                         AND b.status IN {ACTIVE} AND b.start_at_ms <= $2 AND b.end_at_ms > $2) AS occupied \
                     FROM slots s WHERE s.lot_id = $1 ORDER BY s.number"
                ))
                .bind(id)
                .bind(ms(now))
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| {
                    Ok(Slot {
                        id: r.try_get("id")?,
                        number: r.try_get("number")?,
                        car_wash: r.try_get("car_wash")?,
                        occupied: r.try_get("occupied")?,
                    })
                })
                .collect::<Result<Vec<_>, DomainError>>()?;
                lots.push(Lot {
                    id,
                    owner_id: row.try_get("owner_id")?,
                    owner_name: row.try_get("owner_name")?,
                    name: row.try_get("name")?,
                    price_per_hour_cents: row.try_get("price_per_hour_cents")?,
                    employees,
                    slots,
                });
            }
            Ok(lots)
        }

        pub(crate) async fn slot_info(
            conn: &mut $conn,
            slot_id: i64,
        ) -> Result<Option<SlotInfo>, DomainError> {
            let row = sqlx::query(
                "SELECT l.price_per_hour_cents, s.car_wash FROM slots s JOIN lots l ON l.id = s.lot_id WHERE s.id = $1",
            )
            .bind(slot_id)
            .fetch_optional(conn)
            .await?;
            match row {
                Some(r) => Ok(Some(SlotInfo {
                    price_per_hour_cents: r.try_get("price_per_hour_cents")?,
                    car_wash: r.try_get("car_wash")?,
                })),
                None => Ok(None),
            }
        }

        // ---------------------------------------------------------------------------------------------
        // Bookings

        fn row_to_booking(row: &$row) -> Result<Booking, DomainError> {
            let status: String = row.try_get("status")?;
            let method: String = row.try_get("payment_method")?;
            let pay: String = row.try_get("payment_status")?;
            let wash: Option<String> = row.try_get("car_wash_status")?;
            let duration: i64 = row.try_get("duration_minutes")?;
            let renewed: Option<i64> = row.try_get("renewed_at_ms")?;
            let bad = |e: crate::types::InvalidInput| corrupt(e.to_string());
            Ok(Booking {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                user_name: row.try_get("user_name")?,
                lot_id: row.try_get("lot_id")?,
                lot_name: row.try_get("lot_name")?,
                lot_owner_id: row.try_get("lot_owner_id")?,
                slot_id: row.try_get("slot_id")?,
                slot_number: row.try_get("slot_number")?,
                window: BookingWindow::new(
                    from_ms(row.try_get("start_at_ms")?),
                    from_ms(row.try_get("end_at_ms")?),
                )
                .map_err(bad)?,
                duration_minutes: u32::try_from(duration).map_err(|e| corrupt(e.to_string()))?,
                status: status.parse::<BookingStatus>().map_err(bad)?,
                payment_method: method.parse::<PaymentMethod>().map_err(bad)?,
                payment_status: pay.parse::<PaymentStatus>().map_err(bad)?,
                amount_cents: row.try_get("amount_cents")?,
                car_wash: wash
                    .map(|w| w.parse::<CarWashStatus>())
                    .transpose()
                    .map_err(bad)?,
                decline_reason: row.try_get("decline_reason")?,
                created_at: from_ms(row.try_get("created_at_ms")?),
                renewed_at: renewed.map(from_ms),
            })
        }

        pub(crate) async fn booking(
            conn: &mut $conn,
            id: i64,
        ) -> Result<Option<Booking>, DomainError> {
            let row = sqlx::query(&format!("{BOOKING_SELECT} WHERE b.id = $1"))
                .bind(id)
                .fetch_optional(conn)
                .await?;
            row.as_ref().map(row_to_booking).transpose()
        }

        pub(crate) async fn bookings(
            conn: &mut $conn,
            scope: BookingScope,
        ) -> Result<Vec<Booking>, DomainError> {
            let (filter, id) = match scope {
                BookingScope::All => (ALL_BOOKINGS, None),
                BookingScope::Driver(id) => ("b.user_id = $1", Some(id)),
                BookingScope::Owner(id) => ("l.owner_id = $1", Some(id)),
                BookingScope::Employee(id) => (
                    "b.car_wash_status IS NOT NULL AND l.id IN (SELECT lot_id FROM lot_employees WHERE user_id = $1)",
                    Some(id),
                ),
            };
            let rows = sqlx::query(&format!(
                "{BOOKING_SELECT} WHERE {filter} ORDER BY b.id DESC LIMIT $2"
            ))
            .bind(id)
            .bind(MAX_LISTED)
            .fetch_all(conn)
            .await?;
            rows.iter().map(row_to_booking).collect()
        }

        /// Inserts a `requested` booking; the database refuses an overlap (see `is_slot_taken`).
        pub(crate) async fn insert_booking(
            conn: &mut $conn,
            b: NewBookingRow<'_>,
        ) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar(
                "INSERT INTO bookings (user_id, slot_id, start_at_ms, end_at_ms, duration_minutes, status, payment_method, \
                     payment_status, payment_ref, amount_cents, car_wash_status, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, 'requested', $6, $7, $8, $9, $10, $11) RETURNING id",
            )
            .bind(b.user_id)
            .bind(b.slot_id)
            .bind(ms(b.window.start()))
            .bind(ms(b.window.end()))
            .bind(i64::from(b.duration_minutes))
            .bind(b.payment_method.as_str())
            .bind(b.payment_status.as_str())
            .bind(b.payment_ref)
            .bind(b.amount_cents)
            .bind(b.car_wash.then_some("pending"))
            .bind(ms(b.now))
            .fetch_one(conn)
            .await
        }

        /// The driver's own active booking of this slot made since `since` with this duration: what a
        /// retried (double-clicked) create finds.
        pub(crate) async fn recent_same_booking(
            conn: &mut $conn,
            user_id: i64,
            slot_id: i64,
            duration_minutes: u32,
            since: DateTime<Utc>,
        ) -> Result<Option<i64>, sqlx::Error> {
            sqlx::query_scalar(&format!(
                "SELECT id FROM bookings WHERE user_id = $1 AND slot_id = $2 AND duration_minutes = $3 \
                     AND status IN {ACTIVE} AND created_at_ms >= $4 ORDER BY id DESC LIMIT 1"
            ))
            .bind(user_id)
            .bind(slot_id)
            .bind(i64::from(duration_minutes))
            .bind(ms(since))
            .fetch_optional(conn)
            .await
        }

        /// Moves a booking from `from` to `to`; `false` when it was not in `from` (a retry or a race).
        pub(crate) async fn transition(
            conn: &mut $conn,
            id: i64,
            from: BookingStatus,
            to: BookingStatus,
            decline_reason: Option<&str>,
        ) -> Result<bool, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE bookings SET status = $3, decline_reason = COALESCE($4, decline_reason) WHERE id = $1 AND status = $2",
            )
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(decline_reason)
            .execute(conn)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        pub(crate) async fn mark_cash_paid(
            conn: &mut $conn,
            id: i64,
        ) -> Result<bool, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE bookings SET payment_status = 'paid' \
                 WHERE id = $1 AND payment_method = 'cash' AND payment_status = 'pending'",
            )
            .bind(id)
            .execute(conn)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        pub(crate) async fn mark_car_wash_done(
            conn: &mut $conn,
            id: i64,
        ) -> Result<bool, sqlx::Error> {
            let done = sqlx::query("UPDATE bookings SET car_wash_status = 'done' WHERE id = $1 AND car_wash_status = 'pending'")
                .bind(id)
                .execute(conn)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        /// `expired` → `confirmed` with a new window; `false` when the booking is no longer expired (a
        /// concurrent renewal won: on PostgreSQL it waits for the row, then its `WHERE` fails). The
        /// database refuses a taken slot (see `is_slot_taken`).
        pub(crate) async fn renew(
            conn: &mut $conn,
            r: Renewal<'_>,
        ) -> Result<bool, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE bookings SET status = 'confirmed', start_at_ms = $2, end_at_ms = $3, duration_minutes = $4, \
                     payment_method = $5, payment_status = $6, payment_ref = COALESCE($7, payment_ref), \
                     amount_cents = amount_cents + $8, renewed_at_ms = $9 \
                 WHERE id = $1 AND status = 'expired'",
            )
            .bind(r.id)
            .bind(ms(r.window.start()))
            .bind(ms(r.window.end()))
            .bind(i64::from(r.duration_minutes))
            .bind(r.payment_method.as_str())
            .bind(r.payment_status.as_str())
            .bind(r.payment_ref)
            .bind(r.amount_cents)
            .bind(ms(r.now))
            .execute(conn)
            .await?;
            Ok(done.rows_affected() == 1)
        }
    };
}

pub(crate) use shared_queries;
