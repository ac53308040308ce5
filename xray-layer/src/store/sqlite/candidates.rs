//! Where a candidate went: its verdicts across steps and runs (lineage), and the differences
//! between two runs' verdicts in the same step (the compare view's pages).

use super::read::{int, json_col, page, parse_uuid, text};
use super::sqlite_error;
use super::SEP;
use crate::store::cursor::Cursor;
use crate::store::preview::json_preview;
use crate::store::query::*;
use crate::store::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

pub(super) fn candidate_lineage(
    conn: &Connection,
    candidate_id: &str,
    q: &LineageQuery,
) -> Result<Page<LineageEntry>, StoreError> {
    let limit = page_size(q.limit)?;
    let indexed: i64 = conn
        .query_row(
            "SELECT value FROM xray_meta WHERE key = 'indexed_seq'",
            [],
            |r| r.get(0),
        )
        .map_err(sqlite_error)?;
    let mut params = vec![text(candidate_id), int(indexed)];
    let mut after = String::new();
    if let Some(c) = &q.cursor {
        let c = Cursor::decode(c, 'l')?;
        let (sid, idx) = c
            .tiebreak
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
            .ok_or_else(|| StoreError::invalid("cursor", "not a cursor returned by this list"))?;
        after = " WHERE (s.started_at < ?3 OR (s.started_at = ?3 AND (s.sid < ?4 OR (s.sid = ?4 AND e.idx > ?5))))".into();
        params.extend([int(c.key), int(sid), int(idx)]);
    }
    // CROSS JOIN fixes the join order, which the planner got wrong twice (measured on 5,000
    // runs: 60 ms instead of 0.1 ms per query):
    // - the steps not indexed yet are few (written since the writer last caught up), so the
    //   second branch starts from them (by `steps_seq`) and reads only their rows, instead of
    //   scanning every evaluation for the candidate;
    // - the few hits drive the outer query, instead of a walk over every step in `started_at`
    //   order to avoid sorting.
    let sql = format!(
        "WITH hits(step_sid, idx) AS MATERIALIZED (
            SELECT step_sid, idx FROM candidate_index WHERE candidate_id = ?1
            UNION
            SELECT e.step_sid, e.idx FROM steps s CROSS JOIN evaluations e ON e.step_sid = s.sid
            WHERE s.seq > ?2 AND e.candidate_id = ?1
         )
         SELECT x.id, x.name, x.started_at, s.id, s.name, s.kind, s.started_at, s.sid,
                e.idx, e.label, e.passed, e.score, e.selected, e.checks, e.metrics, e.snapshot,
                CASE WHEN e.selected THEN s.selection END, substr(x.input, 1, 1000)
         FROM hits h
         CROSS JOIN steps s ON s.sid = h.step_sid
         CROSS JOIN evaluations e ON e.step_sid = h.step_sid AND e.idx = h.idx
         JOIN executions x ON x.id = s.execution_id{after}
         ORDER BY s.started_at DESC, s.sid DESC, e.idx LIMIT {}",
        limit + 1
    );
    let page = page(
        conn,
        &sql,
        params,
        limit,
        |r| {
            let checks: String = r.get(13)?;
            Ok((
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
                LineageEntry {
                    execution_id: parse_uuid(&r.get::<_, String>(0)?),
                    execution_name: r.get(1)?,
                    execution_started_at: r.get(2)?,
                    step_id: parse_uuid(&r.get::<_, String>(3)?),
                    step_name: r.get(4)?,
                    step_kind: r.get(5)?,
                    step_started_at: r.get(6)?,
                    label: r.get(9)?,
                    passed: r.get(10)?,
                    score: r.get(11)?,
                    selected: r.get(12)?,
                    checks: serde_json::from_str(&checks).unwrap_or_default(),
                    metrics: metrics_of(r.get::<_, Option<String>>(14)?.as_deref()),
                    snapshot: json_col(r.get(15)?),
                    selection_reason: selection_reason(
                        r.get::<_, Option<String>>(16)?.as_deref(),
                        candidate_id,
                    ),
                    execution_input_preview: r
                        .get::<_, Option<String>>(17)?
                        .as_deref()
                        .map(json_preview)
                        .unwrap_or_default(),
                },
            ))
        },
        |(sid, idx, e)| Cursor::new('l', e.step_started_at, format!("{sid}:{idx}")),
    )?;
    Ok(Page {
        items: page.items.into_iter().map(|(_, _, e)| e).collect(),
        next_cursor: page.next_cursor,
    })
}

fn step_sid(conn: &Connection, id: Uuid) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT sid FROM steps WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.to_string()], |r| r.get(0)).optional())
        .map_err(sqlite_error)
}

pub(super) fn candidates_only_in(
    conn: &Connection,
    step: Uuid,
    other: Uuid,
    q: &LineageQuery,
) -> Result<OnlyIn, StoreError> {
    let limit = page_size(q.limit)?;
    let (Some(a), Some(b)) = (step_sid(conn, step)?, step_sid(conn, other)?) else {
        return Ok(OnlyIn::default());
    };
    let after = match &q.cursor {
        Some(c) => Cursor::decode(c, 'o')?.key,
        None => -1,
    };
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) {ONLY}"))
        .and_then(|mut s| s.query_row(params![a, b], |r| r.get(0)))
        .map_err(sqlite_error)?;
    // Selected first, then passed, then in recorded order: one number, for the cursor.
    let rank = format!(
        "((1 - a.selected) * {ONLY_IN_SELECTED_BIT} + (1 - a.passed) * {ONLY_IN_PASSED_BIT} \
         + a.idx)"
    );
    let sql = format!(
        "SELECT {rank}, a.candidate_id, a.label, a.passed, a.score, a.selected, a.checks {ONLY}
           AND {rank} > ?3
         ORDER BY 1 LIMIT {}",
        limit + 1
    );
    let page = page(
        conn,
        &sql,
        vec![int(a), int(b), int(after)],
        limit,
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                OnlyInEntry {
                    candidate_id: r.get(1)?,
                    verdict: verdict_at(r, 2)?,
                },
            ))
        },
        |(rank, _)| Cursor::new('o', *rank, ""),
    )?;
    Ok(OnlyIn {
        total: total.max(0) as u64,
        items: page.items.into_iter().map(|(_, e)| e).collect(),
        next_cursor: page.next_cursor,
    })
}

/// A verdict from five columns from `at`: label, passed, score, selected, checks.
fn verdict_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Verdict> {
    let checks: String = r.get(at + 4)?;
    Ok(Verdict {
        label: r.get(at)?,
        passed: r.get(at + 1)?,
        score: r.get(at + 2)?,
        selected: r.get(at + 3)?,
        checks: serde_json::from_str(&checks).unwrap_or_default(),
    })
}

pub(super) fn verdict_changes(
    conn: &Connection,
    step_a: Uuid,
    step_b: Uuid,
    q: &LineageQuery,
) -> Result<Page<VerdictChange>, StoreError> {
    let limit = page_size(q.limit)?;
    let (Some(a), Some(b)) = (step_sid(conn, step_a)?, step_sid(conn, step_b)?) else {
        return Ok(Page::empty());
    };
    let (after_a, after_b) = Cursor::change_position(q.cursor.as_deref())?;
    let sql = verdict_changes_sql(limit);
    // No check named: an empty marker, which the query's `?5 = ''` lets every pair through on.
    let marker = match &q.check {
        Some(check) => format!("{SEP}{check}{SEP}"),
        None => String::new(),
    };
    let page = page(
        conn,
        &sql,
        vec![int(a), int(b), int(after_a), int(after_b), text(&marker)],
        limit,
        |r| {
            Ok((
                (r.get::<_, i64>(0)?, r.get::<_, i64>(12)?),
                VerdictChange {
                    candidate_id: r.get(1)?,
                    a: verdict_at(r, 2)?,
                    b: verdict_at(r, 7)?,
                },
            ))
        },
        |((a_idx, b_idx), _)| Cursor::after_change(*a_idx, *b_idx),
    )?;
    Ok(Page {
        items: page.items.into_iter().map(|(_, c)| c).collect(),
        next_cursor: page.next_cursor,
    })
}

/// [`verdict_changes`]' rows, counted: the pairs found as its page query finds them.
pub(super) fn count_verdict_changes(
    conn: &Connection,
    step_a: Uuid,
    step_b: Uuid,
) -> Result<u64, StoreError> {
    let (Some(a), Some(b)) = (step_sid(conn, step_a)?, step_sid(conn, step_b)?) else {
        return Ok(0);
    };
    conn.prepare_cached(COUNT_CHANGES)
        .and_then(|mut s| s.query_row(params![a, b], |r| r.get::<_, i64>(0)))
        .map(|n| n.max(0) as u64)
        .map_err(sqlite_error)
}

/// [`verdict_changes`]' pairs, by the checks that failed on one side only.
pub(super) fn verdict_change_checks(
    conn: &Connection,
    step_a: Uuid,
    step_b: Uuid,
) -> Result<Vec<CheckChange>, StoreError> {
    let (Some(a), Some(b)) = (step_sid(conn, step_a)?, step_sid(conn, step_b)?) else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(CHANGED_CHECKS).map_err(sqlite_error)?;
    let pairs = stmt
        .query_map(params![a, b], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sqlite_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite_error)?;
    Ok(CheckChange::tally(
        pairs
            .iter()
            .map(|(a, b)| (failed_names(a), failed_names(b))),
    ))
}

/// The names in a `failed_checks` column (`\x1fa\x1fb\x1f`).
fn failed_names(column: &str) -> impl Iterator<Item = &str> {
    column.split(SEP).filter(|n| !n.is_empty())
}

/// The failed checks of each pair [`verdict_changes`] finds whose failed checks differ.
const CHANGED_CHECKS: &str = "WITH b AS MATERIALIZED (
         SELECT candidate_id, passed, selected, failed_checks FROM evaluations WHERE step_sid = ?2
     )
     SELECT a.failed_checks, b.failed_checks
     FROM evaluations a CROSS JOIN b ON b.candidate_id = a.candidate_id
     WHERE a.step_sid = ?1 AND (a.passed != b.passed OR a.selected != b.selected)
       AND a.failed_checks != b.failed_checks";

/// The candidates steps `?1` and `?2` both judged, differently: counted against `b`'s
/// candidates indexed for the query, as [`verdict_changes_sql`] finds them.
const COUNT_CHANGES: &str = "WITH b AS MATERIALIZED (
         SELECT candidate_id, passed, selected FROM evaluations WHERE step_sid = ?2
     )
     SELECT count(*) FROM evaluations a CROSS JOIN b ON b.candidate_id = a.candidate_id
     WHERE a.step_sid = ?1 AND (a.passed != b.passed OR a.selected != b.selected)";

/// The page query of [`verdict_changes`]: `?1`, `?2` the steps, `?3`, `?4` the cursor's
/// position (`a.idx`, `b.idx`), `?5` the marker of the check that must have failed on one
/// side only (`\x1fname\x1f`), or `''` for every change.
///
/// `candidate_id` has no index (ingest does not pay for one), so the pairs are found first
/// through an index SQLite builds for the query on `b`'s candidates (one pass over its rows),
/// and only the page's rows are read whole. `+a.idx` keeps the planner from using the
/// cursor's range on `a` instead: it then guesses `a` small and searches all of `b`'s rows
/// for each row of `a` (0.4 s for two steps of 2,500 candidates, seconds in a debug build).
/// A candidate B judged twice is two rows with one `a.idx`: `b.idx` orders and pages them.
fn verdict_changes_sql(limit: usize) -> String {
    format!(
        "WITH b AS MATERIALIZED (
         SELECT candidate_id, idx, passed, selected, failed_checks
         FROM evaluations WHERE step_sid = ?2
     ),
     pairs AS MATERIALIZED (
         SELECT a.idx AS a_idx, b.idx AS b_idx
         FROM evaluations a CROSS JOIN b ON b.candidate_id = a.candidate_id
         WHERE a.step_sid = ?1 AND +a.idx >= ?3 AND (a.idx > ?3 OR b.idx > ?4)
           AND (a.passed != b.passed OR a.selected != b.selected)
           AND (?5 = '' OR (instr(a.failed_checks, ?5) > 0) != (instr(b.failed_checks, ?5) > 0))
     )
     SELECT a.idx, a.candidate_id,
            a.label, a.passed, a.score, a.selected, a.checks,
            b.label, b.passed, b.score, b.selected, b.checks, b.idx
     FROM pairs
     JOIN evaluations a ON a.step_sid = ?1 AND a.idx = pairs.a_idx
     JOIN evaluations b ON b.step_sid = ?2 AND b.idx = pairs.b_idx
     ORDER BY pairs.a_idx, pairs.b_idx LIMIT {}",
        limit + 1
    )
}

/// What the candidates of step `step_a` that `step_b` did not judge were: one statement, every
/// check at once (see [`Store::common_values_only_in`](crate::store::Store::common_values_only_in)).
pub(super) fn common_values_only_in(
    conn: &Connection,
    step_a: Uuid,
    step_b: Uuid,
    at_least: u64,
    per_check: usize,
) -> Result<Vec<CommonValues>, StoreError> {
    let (Some(a), Some(b)) = (step_sid(conn, step_a)?, step_sid(conn, step_b)?) else {
        return Ok(Vec::new());
    };
    let at_least = i64::try_from(at_least.max(1)).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(COMMON_VALUES).map_err(sqlite_error)?;
    let rows = stmt
        .query_map(params![a, b, at_least], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?.max(0) as u64,
                r.get::<_, i64>(3)?.max(0) as u64,
            ))
        })
        .map_err(sqlite_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite_error)?;
    Ok(CommonValues::group(rows, per_check))
}

/// Per check and value of step `?1`'s rows whose candidate step `?2` did not judge: how many
/// rows had it (and passed with it), when at least `?3` did. Rows, not check entries: a row
/// that made a check twice with one value counts once.
const COMMON_VALUES: &str =
    "SELECT json_extract(c.value, '$.name') AS name, c.value -> '$.observed' AS v,
            count(DISTINCT CASE WHEN json_extract(c.value, '$.passed') THEN e.idx END),
            count(DISTINCT e.idx) AS n
     FROM evaluations e, json_each(e.checks) c
     WHERE e.step_sid = ?1 AND json_type(c.value, '$.observed') NOT IN ('null')
       AND e.candidate_id NOT IN (SELECT candidate_id FROM evaluations WHERE step_sid = ?2)
     GROUP BY name, v HAVING n >= ?3
     ORDER BY name, n DESC, v";

/// The rows of step `?1` whose candidate step `?2` did not judge.
///
/// `NOT IN` a list, not a join: SQLite builds the list of `b`'s candidates once, as an
/// index of its own, and looks each row of `a` up in it. A join on `candidate_id` (which
/// has no index: ingest does not pay for one) searched all of `b`'s rows for every row of
/// `a`, 0.2 s for two steps of 2,500 candidates, ~2 s in a debug build.
const ONLY: &str = "FROM evaluations a
     WHERE a.step_sid = ?1
       AND a.candidate_id NOT IN (SELECT candidate_id FROM evaluations WHERE step_sid = ?2)";

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{params_from_iter, StatementStatus};

    /// Candidates per step: enough that a query searching all of one step's rows for each row
    /// of the other (4,000,000 row visits) stands far apart from one that indexes them.
    const N: i64 = 2_000;

    /// Step 1 judged c0..c1999, step 2 judged c500..c2499; of the 1,500 both judged, every
    /// third got the other verdict in step 2.
    fn two_steps() -> Connection {
        let mut conn = Connection::open_in_memory().expect("an in-memory database");
        super::super::schema::migrate(&mut conn).expect("the schema");
        let mut insert = conn
            .prepare(
                "INSERT INTO evaluations (step_sid, idx, candidate_id, passed, selected)
                 VALUES (?1, ?2, ?3, ?4, 0)",
            )
            .expect("the insert");
        for i in 0..N {
            insert
                .execute(params![1, i, format!("c{i}"), 1])
                .expect("a row");
            let c = i + 500;
            let passed = i64::from(!(c < N && c % 3 == 0));
            insert
                .execute(params![2, i, format!("c{c}"), passed])
                .expect("a row");
        }
        drop(insert);
        conn
    }

    /// Rows returned and the virtual machine's steps (the work SQLite did, on any machine).
    fn run(conn: &Connection, sql: &str, values: &[&dyn rusqlite::ToSql]) -> (usize, i32) {
        let mut stmt = conn.prepare(sql).expect("the query");
        let rows = stmt
            .query_map(params_from_iter(values), |_| Ok(()))
            .expect("rows")
            .count();
        (rows, stmt.get_status(StatementStatus::VmStep))
    }

    #[test]
    fn comparing_two_large_steps_visits_each_row_a_few_times_not_once_per_pair() {
        let conn = two_steps();
        let (changes, work) = run(&conn, &verdict_changes_sql(1_000), &[&1, &2, &-1, &-1, &""]);
        assert_eq!(
            changes, 500,
            "every third of c500..c1999 changed its verdict"
        );
        assert!(
            i64::from(work) < 100 * N,
            "verdict changes took {work} VM steps for {N} candidates a side"
        );
        // A later page, from a cursor inside the list, is as cheap.
        let (rest, work) = run(
            &conn,
            &verdict_changes_sql(1_000),
            &[&1, &2, &1_200, &-1, &""],
        );
        assert_eq!(
            rest, 267,
            "changes from c1200 on (cursor: a.idx 1200, before any b.idx)"
        );
        assert!(i64::from(work) < 100 * N, "{work} VM steps");

        // One check's changes, and the checks of them all: the same pairs, found the same way.
        let (none, work) = run(
            &conn,
            &verdict_changes_sql(1_000),
            &[&1, &2, &-1, &-1, &format!("{SEP}price{SEP}")],
        );
        assert_eq!(none, 0, "no row failed a check");
        assert!(
            i64::from(work) < 100 * N,
            "one check's changes: {work} VM steps"
        );
        let (_, work) = run(&conn, CHANGED_CHECKS, &[&1, &2]);
        assert!(i64::from(work) < 100 * N, "their checks: {work} VM steps");

        let (_, work) = run(&conn, COUNT_CHANGES, &[&1, &2]);
        assert!(
            i64::from(work) < 100 * N,
            "counting them took {work} VM steps"
        );
        let counted: i64 = conn
            .query_row(COUNT_CHANGES, params![1, 2], |r| r.get(0))
            .expect("a count");
        assert_eq!(counted, 500, "as many as the pages list");

        let (_, work) = run(&conn, &format!("SELECT count(*) {ONLY}"), &[&1, &2]);
        assert!(i64::from(work) < 100 * N, "only-in took {work} VM steps");
        let only_a: i64 = conn
            .query_row(&format!("SELECT count(*) {ONLY}"), params![1, 2], |r| {
                r.get(0)
            })
            .expect("a count");
        assert_eq!(only_a, 500, "c0..c499");
    }
}
