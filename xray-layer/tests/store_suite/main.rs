//! The store conformance suite: the same cases, run against every [`Store`] engine, so that a
//! new engine can be proven to answer exactly as SQLite does.
//!
//! - `cases/`: each case is a plain function taking `&dyn Store` (or a [`fixtures::Db`] when it
//!   needs several handles on one database). Cases write records with `Store::write` and read
//!   them back through the trait only: nothing in them knows the engine.
//! - [`suite!`] makes one `#[test]` per case for an engine: `suite!(sqlite, fixtures::sqlite())`
//!   gives `sqlite::write_twice_keeps_one_copy`, … Each test opens a fresh, empty database.
//! - Engines: `sqlite` (a file in a temporary directory) and `postgres` (feature `postgres`, a
//!   new database per test on the server named by `XRAY_TEST_POSTGRES_URL`; see `postgres.rs`).
//!
//! Run one engine with `cargo test -p xray-layer --test store_suite sqlite::`, and PostgreSQL
//! with `eval "$(bash .ci/postgres.sh start)"; XRAY_REQUIRE_POSTGRES=1 cargo test -p xray-layer
//! --features postgres --test store_suite postgres::`.
//!
//! [`Store`]: xray::store::Store

/// One `#[test]` per case for an engine. `$open` is an expression of type
/// `Option<fixtures::Db>`, evaluated once per test; `None` skips the test (it passes).
///
/// `suite!(name, open)` puts the tests in a module `name`; `suite!(@cases open)` puts them in
/// the current module.
macro_rules! suite {
    ($engine:ident, $open:expr) => {
        mod $engine {
            suite!(@cases $open);
        }
    };
    (@cases $open:expr) => {
        suite!(@store $open;
            write_twice_keeps_one_copy,
            step_start_then_finish_is_one_finished_step,
            missing_execution_start_gets_a_placeholder,
            execution_metadata_merges_start_and_finish,
            dropped_records_mark_running_steps_lost,
            execution_counts_follow_steps_across_batches,
            many_runs_in_one_batch_read_as_if_written_one_by_one,
            list_executions_filters,
            list_executions_search_text,
            list_executions_preview_their_input,
            list_executions_paginates_while_rows_arrive,
            bad_parameters_are_errors_naming_the_parameter,
            execution_detail_steps_payloads_and_funnel,
            step_round_trips_every_field,
            find_steps_filters_newest_first,
            find_steps_paginates_while_steps_arrive,
            step_stats_percentiles_and_rates,
            evaluations_round_trip_in_recorded_order,
            checks_round_trip_exactly,
            evaluations_sort_by_score_missing_last,
            evaluations_sort_by_metric_missing_last,
            evaluations_filter_by_verdict_check_and_text,
            evaluations_paginate_every_sort_exactly_once,
            candidate_lineage_newest_first_across_executions,
            verdict_changes_between_two_steps,
            verdict_changes_by_check,
            candidates_only_in_one_of_two_steps,
            check_values_count_each_observed_value,
            a_run_that_failed_on_its_way_returns_no_candidates,
            update_execution_sets_tags_and_notes,
            delete_executions_removes_everything,
            delete_executions_before_a_time,
            recorder_counts_accumulate,
            changes_since_tails_every_write,
            maintain_changes_no_answer,
            empty_store_answers_empty,
        );
        suite!(@db $open;
            second_handle_sees_writes_of_the_first,
            reopened_store_keeps_everything,
        );
    };
    (@store $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let Some(db) = $open else { return };
                let store = db.open();
                $crate::cases::$case(&*store);
            }
        )*
    };
    (@db $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let Some(db) = $open else { return };
                $crate::cases::$case(&db);
            }
        )*
    };
}

mod cases;
mod fixtures;
mod postgres;

suite!(sqlite, crate::fixtures::sqlite());
