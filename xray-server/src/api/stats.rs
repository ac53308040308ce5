//! `/api/v1/stats`: per step name, how many ran, how long they took, how often they failed, and
//! how much they eliminated.

use super::ok;
use crate::app::{App, Call};
use crate::error::ApiError;
use crate::http::Response;
use serde::Serialize;
use std::sync::Arc;
use xray::store::{StatsQuery, StepStats};

#[derive(Serialize)]
struct Stats {
    items: Vec<StepStats>,
}

/// `GET /stats`.
pub async fn stats(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let p = &call.params;
    let query = StatsQuery {
        name: p.text("name"),
        kind: p.text("kind"),
        since: p.time("since")?,
        until: p.time("until")?,
    };
    let items = app.blocking(move |s| s.step_stats(&query)).await?;
    ok(&Stats { items })
}
