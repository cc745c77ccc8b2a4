//! The booking domain's tests, one binary: on a real database of each engine (a temporary SQLite
//! file, and a fresh PostgreSQL database per test), with a manual clock and a gateway that counts
//! what it was asked to do (`common`). `booking` covers the slot race, authorisation, the
//! scheduler across restarts, a crash between commit and publish, retries and every event's rows;
//! `money` covers payments (each failing step of a charge), refunds, the cap, the hold and windows.

mod common;

mod booking;
mod money;
