//! An execution's step counts and funnel ends, kept up batch by batch.
//!
//! `executions.step_count` and `error_steps` change by what each batch wrote ([`CountChange`]):
//! counting them again over all of an execution's steps after every batch made a run of many
//! steps cost the writer more with every batch (a run of 200,000 steps: 143 ms for its first
//! 20,000, 804 ms for its last). They are counted again only when a batch writes over a step
//! that had ended already, where the change is not known. The funnel ends are looked up only
//! when a batch wrote a step that counted candidates.

use super::super::sqlite_error;
use crate::store::StoreError;
use rusqlite::{params, Transaction};
use uuid::Uuid;

/// What a batch changed of one execution's step counts (`executions.step_count`,
/// `error_steps`): kept up by these changes, not counted again over all the execution's steps
/// after each batch, which made a run of many steps cost its writer more with every batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct CountChange {
    pub(super) steps: i64,
    pub(super) errors: i64,
    /// A step row that already had its end was written again (a batch ingested twice): the
    /// change is not known, and the execution's steps are counted again.
    pub(super) recount: bool,
    /// A step that counted the candidates it took in was written: the execution's candidates
    /// in are looked up again (otherwise they cannot have changed).
    pub(super) in_changed: bool,
    /// Likewise a top-level step that counted the candidates it let out, or the execution's
    /// own record (its status).
    pub(super) out_changed: bool,
}

impl CountChange {
    pub(super) fn add(&mut self, other: CountChange) {
        self.steps += other.steps;
        self.errors += other.errors;
        self.recount |= other.recount;
        self.in_changed |= other.in_changed;
        self.out_changed |= other.out_changed;
    }
}

/// The `SET` terms of an execution's funnel ends: the candidates its first step that counted
/// them took in, and those its last top-level step that counted them let out, each looked up
/// only when `?5` (in) or `?6` (out) says it may have changed. (The look-ups walk the
/// execution's steps in time order to the first that counted: after every batch, that would
/// cost a run of many steps that count nothing more with every batch.)
macro_rules! funnel_ends {
    () => {
        "
        candidates_in = CASE WHEN ?5 THEN
                         (SELECT candidates_in FROM steps WHERE execution_id = ?1
                          AND candidates_in IS NOT NULL ORDER BY started_at, sid LIMIT 1)
                         ELSE candidates_in END,
        -- A run that failed returned no candidates, whatever a step let through before.
        candidates_out = CASE WHEN status = 'error' THEN NULL WHEN ?6 THEN
                         (SELECT candidates_out FROM steps WHERE execution_id = ?1
                          AND candidates_out IS NOT NULL AND parent_id IS NULL
                          ORDER BY started_at DESC, sid DESC LIMIT 1)
                         ELSE candidates_out END,
        "
    };
}

/// Brings an execution's step counts and funnel ends up to date after its steps changed: the
/// counts by what changed (`change`), or counted again over its steps when that is not known.
pub(super) fn refresh_execution(
    tx: &Transaction<'_>,
    id: Uuid,
    change: &CountChange,
    seq: i64,
) -> Result<(), StoreError> {
    if !change.recount {
        tx.prepare_cached(concat!(
            "UPDATE executions SET
                step_count = step_count + ?3, error_steps = error_steps + ?4,",
            funnel_ends!(),
            "seq = ?2 WHERE id = ?1"
        ))
        .and_then(|mut s| {
            s.execute(params![
                id.to_string(),
                seq,
                change.steps,
                change.errors,
                change.in_changed,
                change.out_changed
            ])
        })
        .map_err(sqlite_error)?;
        return Ok(());
    }
    tx.prepare_cached(concat!(
            "UPDATE executions SET
                step_count = (SELECT count(*) FROM steps WHERE execution_id = ?1),
                error_steps = (SELECT count(*) FROM steps WHERE execution_id = ?1 AND status = 'error'),",
            funnel_ends!(),
        "seq = ?2 WHERE id = ?1"
    ))
    .and_then(|mut s| s.execute(params![id.to_string(), seq, 0, 0, true, true]))
    .map_err(sqlite_error)?;
    Ok(())
}
