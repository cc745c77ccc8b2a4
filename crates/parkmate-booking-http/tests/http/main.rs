//! The booking API over HTTP, one binary: `api` drives the routes of a real domain on a temporary
//! SQLite file; `openapi_snapshot` keeps the committed `web/openapi.json` equal to the generated
//! document.

mod api;
mod openapi_snapshot;
