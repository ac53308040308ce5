//! `POST /api/v1/ingest/records`: batches of records from remote recorders
//! (`xray::layer().remote(url)`, see `xray::remote`), usually gzip-compressed.
//!
//! A batch is `{"xray_records": 1, "batch": "<uuid>", "dropped": n, "failed": n, "records":
//! [...]}`: the records a recorder's writer produced (execution and step starts and ends, each
//! step complete with its evaluations), and the records the recorder had to drop or failed to
//! spool since its last accepted batch. The executions its sampling left out in that time come
//! in the `X-XRay-Sampled-Out` header. Records are written idempotently by id, so a batch sent
//! again after a lost answer changes nothing; its counts are added once per batch id (the ids of
//! the last [`RECENT_BATCHES`] batches are remembered; a retry across a restart of this server
//! could count twice, which the recorder's design makes rare: it retries within seconds).

use super::{json_body, ok};
use crate::app::{App, Call};
use crate::error::ApiError;
use crate::http::Response;
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use xray::model::Record;
use xray::store::{RecorderCounts, SAMPLED_OUT_HEADER};

/// The version of the batch format this server reads.
pub const RECORDS_VERSION: u32 = 1;

/// How many batch ids are remembered for counting their counts once.
pub const RECENT_BATCHES: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    xray_records: u32,
    #[serde(default)]
    batch: Option<String>,
    #[serde(default)]
    dropped: u64,
    #[serde(default)]
    failed: u64,
    records: Vec<Record>,
}

#[derive(Serialize)]
struct Written {
    records: usize,
}

/// The ids of the batches whose counts were added most recently.
#[derive(Default)]
pub struct RecentBatches {
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl RecentBatches {
    /// Remembers `id`; false when it was already there.
    fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == RECENT_BATCHES {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(id.to_owned());
        self.seen.insert(id.to_owned());
        true
    }
}

/// The executions the recorder's sampling left out, from the `X-XRay-Sampled-Out` header (a
/// header, so that a server that predates the count ignores it instead of refusing the batch).
fn sampled_out(call: &Call) -> Result<u64, ApiError> {
    let Some(value) = call.headers.get(SAMPLED_OUT_HEADER) else {
        return Ok(0);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::invalid_body(
                Some(SAMPLED_OUT_HEADER.into()),
                format!("the {SAMPLED_OUT_HEADER} header must be a whole number of executions"),
            )
        })
}

/// Writes a batch of records and adds its counts to the recorder counts.
pub async fn ingest(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let batch: Batch = json_body(&call)?;
    if batch.xray_records != RECORDS_VERSION {
        return Err(ApiError::invalid_body(
            Some("xray_records".into()),
            format!(
                "batch format {} is not known to this server (it reads {RECORDS_VERSION})",
                batch.xray_records
            ),
        ));
    }
    let counts = RecorderCounts {
        dropped: batch.dropped,
        failed: batch.failed,
        sampled_out: sampled_out(&call)?,
    };
    let count_them = counts != RecorderCounts::default()
        && match &batch.batch {
            Some(id) => app
                .counted_batches
                .lock()
                .map(|mut recent| recent.first_time(id))
                .unwrap_or(true),
            None => true,
        };
    let written = batch.records.len();
    let records = batch.records;
    let result = app
        .blocking(move |store| {
            store.write(&records)?;
            if count_them {
                store.add_recorder_counts(&counts)?;
            }
            Ok(())
        })
        .await;
    if result.is_err() && count_them {
        // Not written: the recorder will send the batch again, and its counts with it.
        if let (Some(id), Ok(mut recent)) = (&batch.batch, app.counted_batches.lock()) {
            recent.seen.remove(id);
        }
    }
    result?;
    ok(&Written { records: written })
}
