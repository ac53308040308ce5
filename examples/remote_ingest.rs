//! A process with no database of its own: it records runs in memory and sends them to an
//! X-Ray server's `POST /api/v1/ingest`, where they appear beside the server's own.
//!
//! ```sh
//! cargo run -p xray-server -- --db xray.db &                    # the collector
//! XRAY_ENDPOINT=http://127.0.0.1:7777 cargo run -p xray-examples --example remote_ingest
//! ```
//!
//! `XRAY_ENDPOINT` is the server (default `http://127.0.0.1:7777`); `XRAY_TOKEN` its token, if
//! it has one. The document sent is the one `GET /api/v1/executions/{id}/export` returns, ids
//! included, so sending it twice stores it once. This sends whole runs once they have finished,
//! from the program's own code — for a one-off upload or a bug report. To stream every record
//! as it is written, with a local spool for when the server is down, build the layer with
//! `xray::layer().remote(url)` (feature `remote` of `xray-layer`; see `xray::remote`).

use tracing_subscriber::prelude::*;
use xray::export::{ExportDocument, ExportedExecution};
use xray::store::ExecutionQuery;
use xray_examples::catalog::{self, Catalog};
use xray_examples::competitor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint =
        std::env::var("XRAY_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:7777".into());
    let endpoint = endpoint.trim_end_matches('/');

    // Record into memory: this process keeps no file.
    let (xray_layer, guard, store) = xray::layer()
        .with_default_env()
        .memory()
        .build_with_store()?;
    tracing_subscriber::registry().with(xray_layer).init();

    let catalog = Catalog::generate(7, catalog::DEFAULT_SIZE);
    for round in 100..102 {
        if let Some(plan) = competitor::live_plan(&catalog, round) {
            let _ = competitor::find_competitor(&plan, &catalog);
        }
    }
    guard.flush();

    // Every run recorded so far, as one export document.
    let runs = store.list_executions(&ExecutionQuery {
        limit: Some(100),
        ..Default::default()
    })?;
    let mut executions = Vec::new();
    for run in &runs.items {
        executions.extend(ExportedExecution::read(store.as_ref(), run.id)?);
    }
    let count = executions.len();
    let document = ExportDocument::new(executions);

    let mut request = ureq::post(&format!("{endpoint}/api/v1/ingest"));
    if let Ok(token) = std::env::var("XRAY_TOKEN") {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    match request.send_json(&document) {
        Ok(reply) => {
            println!("sent {count} runs to {endpoint}: {}", reply.into_string()?);
            for run in &runs.items {
                println!("  {endpoint}/runs/{}", run.id);
            }
            Ok(())
        }
        Err(ureq::Error::Status(code, reply)) => {
            Err(format!("{endpoint} refused the runs ({code}): {}", reply.into_string()?).into())
        }
        Err(e) => Err(format!(
            "no X-Ray server at {endpoint} ({e}); start one with `cargo run -p xray-server -- --db xray.db` \
             or set XRAY_ENDPOINT"
        )
        .into()),
    }
}
