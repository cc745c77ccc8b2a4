//! Serves the built web client (`web/dist`) at `/`, with `index.html` for client-side routes. Unknown
//! `/api/…` paths answer JSON 404 instead of the app's HTML.

use std::path::Path;

use axum::Router;
use axum::response::{Html, IntoResponse};
use parkmate_auth::ApiError;
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

pub fn router(web_dir: &Path) -> Router<AppState> {
    let api_not_found = || async { ApiError::not_found("no such API endpoint").into_response() };
    let router = Router::new()
        .route("/api", axum::routing::any(api_not_found))
        .route("/api/{*rest}", axum::routing::any(api_not_found));
    let index = web_dir.join("index.html");
    if index.is_file() {
        router.fallback_service(ServeDir::new(web_dir).fallback(ServeFile::new(index)))
    } else {
        tracing::warn!(dir = %web_dir.display(), "web client not built; `/` shows a hint (run `npm run build` in web/)");
        router.fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                Html("<!doctype html><title>Parkmate Notify</title><p>The web client is not built. Run <code>make run</code> (or <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>).</p>"),
            )
        })
    }
}
