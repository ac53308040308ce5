//! `/api/v1/candidates/{candidate_id}`: "where did candidate X go?" across every step of every run.

use super::{ok, path};
use crate::app::{App, Call};
use crate::error::ApiError;
use crate::http::Response;
use serde::Serialize;
use std::sync::Arc;
use xray::store::{LineageEntry, LineageQuery, MAX_PAGE_SIZE};

#[derive(Serialize)]
struct Lineage {
    candidate_id: String,
    items: Vec<LineageEntry>,
    next_cursor: Option<String>,
}

/// `GET /candidates/{candidate_id}`: each step that judged the candidate, newest first, with the
/// verdict, the failing checks' reasons and whether it was selected.
pub async fn lineage(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let candidate_id = path(&call, 0).to_owned();
    if candidate_id.chars().count() > 500 {
        return Err(ApiError::invalid(
            "candidate_id",
            "a candidate id is at most 500 characters",
        ));
    }
    let query = LineageQuery {
        limit: call.params.limit(MAX_PAGE_SIZE)?,
        cursor: call.params.text("cursor"),
        ..LineageQuery::default()
    };
    let id = candidate_id.clone();
    let page = app
        .blocking(move |s| s.candidate_lineage(&id, &query))
        .await?;
    ok(&Lineage {
        candidate_id,
        items: page.items,
        next_cursor: page.next_cursor,
    })
}
