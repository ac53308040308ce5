//! Property: any document `POST /api/v1/ingest` accepts comes back identical from
//! `GET /api/v1/executions/{id}/export`, through a real server over a real SQLite file.
//!
//! "Identical" is what the document means, not its bytes: both sides are read as an
//! [`ExportDocument`] and compared as JSON values (so `{"a":1}` and `{ "a": 1 }` are the same
//! metadata, and a field sent as `null` is the same as one left out). The one documented
//! normalization is the order of steps: the export lists them in start order (`started_at`, then
//! the order they were written), so the expected document is sorted the same way (a stable sort).
//!
//! Ingesting the same document twice must leave the same run (ingest is idempotent by id).
//!
//! `cargo test -p xray-server --test roundtrip` runs 150 documents; set `PROPTEST_CASES` for a
//! longer run (RELIABILITY.md has the counts).

#[path = "support/documents.rs"]
mod documents;
mod support;

use documents::{cases, document, into_document, runner};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use support::*;
use xray::export::{ExportDocument, ExportedExecution};

/// The document as its meaning: parsed as the server parses it, then as plain JSON values.
fn meaning(document: &ExportDocument) -> serde_json::Value {
    let text = serde_json::to_string(document).expect("a document serializes");
    let parsed: ExportDocument = serde_json::from_str(&text).expect("a document parses");
    serde_json::to_value(&parsed).expect("a document is JSON")
}

/// What the export of `execution` must be: the execution as sent, its steps in start order.
fn expected(execution: &ExportedExecution) -> serde_json::Value {
    let mut execution = execution.clone();
    execution.steps.sort_by_key(|s| s.started_at);
    meaning(&ExportDocument::new(vec![execution]))
}

#[test]
fn any_document_ingest_accepts_is_exported_back_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir.path().join("xray.db"), |c| {
        c.rate_limit_per_minute = 0;
    });
    let accepted = AtomicUsize::new(0);
    // Why documents were refused: the field each 400 named, with its last path element's
    // indices dropped (`executions[].steps[].candidates_in`).
    let refused = Mutex::new(BTreeMap::<String, usize>::new());
    let total = cases(150);
    let result = runner(total).run(&document(), |shapes| {
        let sent = into_document(shapes);
        let body = serde_json::to_string(&sent).expect("serializes");
        let reply = server.call("POST", "/api/v1/ingest", &[], Some(&body));
        prop_assert!(
            reply.status == 200 || (400..500).contains(&reply.status),
            "ingest answered {}: {}",
            reply.status,
            reply.body
        );
        if reply.status != 200 {
            let field = reply.error_field().unwrap_or_default();
            let field: String = field
                .split('[')
                .map(|p| p.split_once(']').map_or(p, |(_, rest)| rest))
                .collect::<Vec<_>>()
                .join("[]");
            *refused
                .lock()
                .expect("not poisoned")
                .entry(field)
                .or_default() += 1;
            return Ok(());
        }
        accepted.fetch_add(1, Ordering::Relaxed);
        // Ingest is idempotent by id: the same document sent again leaves one identical copy.
        for attempt in ["the first ingest", "the same document ingested again"] {
            if attempt != "the first ingest" {
                let again = server.call("POST", "/api/v1/ingest", &[], Some(&body));
                prop_assert_eq!(again.status, 200, "{}", again.body);
            }
            for execution in &sent.executions {
                let export = server.get(&format!("/api/v1/executions/{}/export", execution.id));
                prop_assert_eq!(export.status, 200, "{}", export.body);
                let got: ExportDocument = serde_json::from_str(&export.body)
                    .map_err(|e| TestCaseError::fail(format!("the export does not parse: {e}")))?;
                let (got, want) = (meaning(&got), expected(execution));
                if got != want {
                    return Err(TestCaseError::fail(format!(
                        "after {attempt}, execution {} differs:\n{}",
                        execution.id,
                        difference(&want, &got, "$")
                    )));
                }
            }
        }
        Ok(())
    });
    let accepted = accepted.into_inner();
    let refused_by = refused.into_inner().expect("not poisoned");
    let refused: usize = refused_by.values().sum();
    eprintln!(
        "ingest → export: {accepted} documents accepted and identical, {refused} refused: \
         {refused_by:?}"
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // Most generated documents are valid: a run that refused them all would prove nothing.
    assert!(
        accepted * 2 > accepted + refused,
        "only {accepted} of {} documents accepted",
        accepted + refused
    );
}

/// The first place where `want` and `got` differ, as a JSON path with both values.
fn difference(want: &serde_json::Value, got: &serde_json::Value, at: &str) -> String {
    use serde_json::Value;
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) if w == v => {}
                    Some(w) => return difference(v, w, &format!("{at}.{k}")),
                    None => return format!("{at}.{k}: sent {v}, missing from the export"),
                }
            }
            for (k, w) in b {
                if !a.contains_key(k) {
                    return format!("{at}.{k}: not sent, exported as {w}");
                }
            }
            format!("{at}: equal objects?")
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                if v != w {
                    return difference(v, w, &format!("{at}[{i}]"));
                }
            }
            format!("{at}: equal arrays?")
        }
        _ => format!("{at}: sent {want}, exported {got}"),
    }
}
