//! How SQL written once runs on either engine.
//!
//! Most of our statements read the same on SQLite and PostgreSQL; only their drivers' types
//! differ. A function generic over `sqlx::Database` would have to repeat sqlx's bounds (executor,
//! encode and decode for every Rust type it binds or reads) at every call site, because Rust does
//! not carry a trait's `where` clauses about other types to its users. So the portable queries
//! are plain async functions over [`Exec`], a small trait that owns those bounds once: a statement
//! is a [`Stmt`] (SQL plus typed [`Arg`]s), its rows come back as [`Row`]s read with
//! [`Row::get`]. Each engine (`sqlite.rs`, `postgres.rs`) turns a `Stmt` into a sqlx query for its
//! driver and classifies its driver's errors into [`DbError`]; the few things whose SQL truly
//! differs are the fields of its [`Dialect`].
//!
//! The cost is one small `Vec` of arguments per statement, next to a round trip to the database.

use std::borrow::Cow;
use std::future::Future;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Sqlite};

use crate::DbError;

/// A value bound to a statement parameter. Typed even when NULL: PostgreSQL declares every
/// parameter's type when it prepares a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<Cow<'a, str>>),
    Bool(bool),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
/// Unsigned counts travel as `BIGINT`: PostgreSQL has no unsigned type, and SQLite's driver binds
/// a `u32` as the same 64-bit integer.
impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Arg::Int(Some(i64::from(v)))
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}
impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}
impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v.map(Cow::Owned))
    }
}

/// One statement with its arguments, in `$1`, `$2`, … order (both engines accept `$N`).
#[derive(Debug, Clone)]
pub struct Stmt<'a> {
    pub(crate) sql: Cow<'a, str>,
    pub(crate) args: Vec<Arg<'a>>,
}

impl<'a> Stmt<'a> {
    pub fn new(sql: impl Into<Cow<'a, str>>) -> Stmt<'a> {
        Stmt {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    pub fn bind(mut self, value: impl Into<Arg<'a>>) -> Stmt<'a> {
        self.args.push(value.into());
        self
    }
}

/// A result row of either engine.
pub enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// A Rust type both drivers can read a column into (`i64`, `String`, `bool`, their `Option`s).
pub trait Column: Sized {
    fn read(row: &Row, column: &str) -> Result<Self, sqlx::Error>;
}

impl<T> Column for T
where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>,
{
    fn read(row: &Row, column: &str) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        match row {
            Row::Sqlite(r) => r.try_get(column),
            Row::Postgres(r) => r.try_get(column),
        }
    }
}

impl Row {
    /// The named column; a missing column or a type mismatch means the schema and the code
    /// disagree, so it is reported as corrupt data.
    pub fn get<T: Column>(&self, column: &str) -> Result<T, DbError> {
        T::read(self, column).map_err(|e| DbError::corrupt(format!("column `{column}`: {e}")))
    }
}

/// What differs between the engines' SQL, as text to splice into a portable statement. One
/// constant per engine (`sqlite::DIALECT`, `postgres::DIALECT`).
#[derive(Debug)]
pub struct Dialect {
    /// Appended to a `SELECT` of bookings (aliased `b`) inside a write transaction: PostgreSQL
    /// locks the row until the commit; SQLite's single writer already excludes every other one.
    pub lock_booking: &'static str,
    /// Appended to the scheduler's subqueries that pick due rows: PostgreSQL locks them in
    /// deadline order so two passes never fire one deadline twice; SQLite needs nothing.
    pub lock_rows: &'static str,
}

/// Something portable SQL runs on: a write transaction ([`crate::Tx`]) or a read connection
/// ([`crate::Read`]).
pub trait Exec: Send {
    fn dialect(&self) -> &'static Dialect;

    fn fetch_all<'s>(
        &'s mut self,
        stmt: Stmt<'s>,
    ) -> impl Future<Output = Result<Vec<Row>, DbError>> + Send + 's;

    fn fetch_optional<'s>(
        &'s mut self,
        stmt: Stmt<'s>,
    ) -> impl Future<Output = Result<Option<Row>, DbError>> + Send + 's;

    /// Runs a statement; answers how many rows it changed.
    fn execute<'s>(
        &'s mut self,
        stmt: Stmt<'s>,
    ) -> impl Future<Output = Result<u64, DbError>> + Send + 's;

    /// Exactly one row (a missing one means the schema and the code disagree).
    fn fetch_one<'s>(
        &'s mut self,
        stmt: Stmt<'s>,
    ) -> impl Future<Output = Result<Row, DbError>> + Send + 's {
        async move {
            self.fetch_optional(stmt)
                .await?
                .ok_or_else(|| DbError::corrupt("a statement that always answers a row did not"))
        }
    }

    /// The one column `v` of exactly one row.
    fn scalar<'s, T: Column + Send>(
        &'s mut self,
        stmt: Stmt<'s>,
    ) -> impl Future<Output = Result<T, DbError>> + Send + 's {
        async move { self.fetch_one(stmt).await?.get("v") }
    }
}
