//! The web client's REST types are generated (openapi-typescript, `npm run api:types`) from a
//! committed copy of the OpenAPI document, `web/openapi.json`. This test fails when that copy
//! differs from what [`parkmate_booking_http::openapi`] generates, so a changed handler or DTO
//! cannot leave the web client's types silently stale.
//!
//! To accept a change: `npm run api:update` in web/, which runs this test with `UPDATE_OPENAPI=1`
//! (rewriting the snapshot) and then `npm run api:types`; `npm run typecheck` fails while the
//! generated types lag behind the snapshot.

use std::path::PathBuf;

use serde_json::Value;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json")
}

/// The document as the snapshot stores it: pretty JSON with a final newline, so diffs are readable.
fn render(doc: &Value) -> String {
    let mut text = serde_json::to_string_pretty(doc).expect("a JSON value always serialises");
    text.push('\n');
    text
}

#[test]
fn committed_openapi_snapshot_matches_the_generated_document() {
    let generated =
        serde_json::to_value(parkmate_booking_http::openapi()).expect("the document serialises");
    let path = snapshot_path();

    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, render(&generated))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!(
            "rewrote {}; now run `npm run api:types` in web/",
            path.display()
        );
        return;
    }

    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let committed: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    // Compared as JSON values: key order and whitespace are not part of the contract.
    let mut differences = Vec::new();
    diff("", &committed, &generated, &mut differences);
    assert!(
        differences.is_empty(),
        "web/openapi.json differs from the OpenAPI document the server generates, at:\n  {}\n\
         Accept the change with `npm run api:update` in web/ (this test with UPDATE_OPENAPI=1, \
         then `npm run api:types`), and fix whatever the web client's type-check then finds.",
        differences.join("\n  ")
    );
}

/// Enough differences to point at the change without burying it.
const MAX_DIFFERENCES: usize = 20;

/// Collects the JSON pointers (RFC 6901) where `old` and `new` differ.
fn diff(at: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if out.len() >= MAX_DIFFERENCES || old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let here = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff(&here, x, y, out),
                    (Some(_), None) => out.push(format!("{here} (only in the snapshot)")),
                    (None, _) => out.push(format!("{here} (only in the generated document)")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{at}/{i}"), x, y, out);
            }
        }
        _ => out.push(format!("{at}: {old} → {new}")),
    }
}
