//! The write side's encodings, checked against what serde_json and the decoded path write.

use super::*;
use crate::model::{Check, Evaluation, StepRecord};
use serde_json::json;

#[test]
fn checks_are_encoded_as_serde_json_encodes_them() {
    let check =
        |name: &str, passed, reason: Option<&str>, observed, threshold, op: Option<&str>| Check {
            name: name.into(),
            passed,
            reason: reason.map(Into::into),
            observed,
            threshold,
            op: op.map(Into::into),
        };
    let e = Evaluation {
        candidate_id: "B01".into(),
        label: None,
        passed: false,
        score: None,
        selected: false,
        checks: vec![
            check(
                "price",
                false,
                Some("8.99 < 14.995 (range 14.995–59.98)"),
                Some(json!(8.99)),
                Some(json!([14.995, 59.98])),
                Some("range"),
            ),
            check(
                "rating",
                true,
                None,
                Some(json!(4.0)),
                Some(json!(3.8)),
                Some("min"),
            ),
            check(
                "cat\"egory\n",
                false,
                Some("Phone \"Cases\" \u{1} not in [a]"),
                Some(json!("Phone")),
                Some(json!(["a", "b"])),
                Some("in"),
            ),
            check("free", false, Some(""), None, None, None),
            check(
                "big",
                false,
                None,
                Some(json!(1e300)),
                Some(json!(-0.0)),
                Some("max"),
            ),
        ],
        metrics: vec![],
        snapshot: None,
    };
    let (mut checks, mut failed, mut scratch) = (String::new(), String::new(), Vec::new());
    encode_checks(&e, &mut checks, &mut failed, &mut scratch);
    assert_eq!(checks, serde_json::to_string(&e.checks).unwrap_or_default());
    assert_eq!(
        failed,
        "\u{1f}price\u{1f}cat\"egory\n\u{1f}free\u{1f}big\u{1f}"
    );
    let none = Evaluation {
        checks: vec![],
        ..e
    };
    encode_checks(&none, &mut checks, &mut failed, &mut scratch);
    assert_eq!((checks.as_str(), failed.as_str()), ("[]", ""));
}

/// A step's arena with every kind of check, near and far misses, NaNs, metrics, scores,
/// labels and snapshots.
fn arena() -> crate::recorder::arena::EvalArena {
    use crate::recorder::arena::{EvalArena, NewCheck, Op, NO_NAME};
    let mut arena = EvalArena::default();
    for i in 0..40u32 {
        let id = arena.push_display(format_args!("C{}", i % 37));
        arena.begin_row(id);
        if i % 3 == 0 {
            let label = arena.push_display(format_args!("title \"{i}\""));
            arena.set_label(label);
        }
        let check = |name, passed, op| NewCheck {
            name,
            passed,
            op,
            observed: f64::NAN,
            observed_text: None,
            lo: f64::NAN,
            hi: f64::NAN,
        };
        let price = f64::from(i) * 1.37 + 0.005;
        let mut c = check("price", (10.0..=30.0).contains(&price), Op::Range);
        (c.observed, c.lo, c.hi) = (price, 10.0, 29.995);
        arena.push_check(c, crate::recorder::arena::Text::NONE, NO_NAME);
        let rating = 2.0 + f64::from(i % 7) * 0.5;
        let mut c = check("rating", rating >= 3.8, Op::Min);
        (c.observed, c.lo) = (if i == 7 { f64::NAN } else { rating }, 3.8);
        arena.push_check(c, crate::recorder::arena::Text::NONE, NO_NAME);
        let mut c = check("size", i % 5 != 0, Op::Max);
        (c.observed, c.hi) = (f64::from(i), 1e300);
        arena.push_check(c, crate::recorder::arena::Text::NONE, NO_NAME);
        let passed = i % 4 != 0;
        let reason = if passed && i % 8 != 1 {
            crate::recorder::arena::Text::NONE
        } else {
            arena.push_display(format_args!("odd \u{1} reason {}", i % 3))
        };
        arena.push_check(check("free", passed, Op::Free), reason, NO_NAME);
        let set = arena.intern("Laptop Stands\u{1f}Desks\u{1f}");
        let mut c = check("category", i % 6 != 0, Op::In);
        c.observed_text = Some(if i % 6 == 0 {
            "Phone \"Cases\""
        } else {
            "Desks"
        });
        arena.push_check(c, crate::recorder::arena::Text::NONE, set);
        if i % 2 == 0 {
            arena.push_metric("relevance", f64::from(i) / 7.0);
            arena.push_metric("nan", f64::NAN);
        }
        if i % 5 == 1 {
            arena.set_score(f64::from(i) * 0.25);
        }
        if i % 9 == 2 {
            let snapshot = arena.push_display(format_args!(
                "{{\"i\":{i},\"pad\":\"{}\"}}",
                "x".repeat(i as usize * 10)
            ));
            arena.set_snapshot(snapshot);
        }
        arena.set_passed(i % 4 != 0 && i % 6 != 0);
    }
    arena
}

fn rows_of(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare(
            "SELECT idx, candidate_id, label, passed, score, selected, checks, failed_checks,
                metrics, snapshot FROM evaluations ORDER BY step_sid, idx",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = stmt
        .query_map([], |r| {
            let mut out = Vec::new();
            for i in 0..10 {
                out.push(format!("{:?}", r.get::<_, rusqlite::types::Value>(i)?));
            }
            Ok(out.join(" | "))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out: Vec<String> = rows.map(|r| r.unwrap_or_default()).collect();
    let step: String = conn
        .query_row(
            "SELECT evaluations || ' ' || evaluations_kept || ' ' || candidates_in || ' ' ||
                candidates_out FROM steps",
            [],
            |r| r.get(0),
        )
        .unwrap_or_default();
    out.push(step);
    out
}

#[test]
fn rows_written_from_the_arena_equal_rows_written_from_decoded_evaluations() {
    use crate::capture::{self, Capture};
    use crate::model::Selection;
    for capture_policy in [Capture::All, Capture::Cap(7), Capture::Summary] {
        let selection = vec![Selection {
            candidate_id: "C5".into(),
            reason: "best".into(),
        }];
        let record = |summary, evaluations| StepRecord {
            selection: selection.clone(),
            candidates_in: Some(40),
            candidates_out: Some(1),
            summary: Some(summary),
            evaluations,
            ..StepRecord::ended_for_test(Uuid::nil())
        };
        // Decoded, as for any store.
        let mut decoded = Vec::new();
        let mut summarizer = capture::Summarizer::default();
        arena().decode_into(&mut decoded, |e| summarizer.add(e));
        let (kept, summary) = capture::keep(capture_policy, decoded, summarizer, &selection);
        let mut a = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        super::super::schema::migrate(&mut a).unwrap_or_else(|e| panic!("{e}"));
        let batch = [Record::StepFinished(Box::new(record(
            summary.clone(),
            kept,
        )))];
        write_batch(&mut a, &batch, &mut []).unwrap_or_else(|e| panic!("{e}"));
        // Straight from the arena.
        let (rows, native_summary) = StepRows::new(arena(), capture_policy, &selection);
        assert_eq!(native_summary, summary, "{capture_policy:?}");
        let mut b = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        super::super::schema::migrate(&mut b).unwrap_or_else(|e| panic!("{e}"));
        let batch = [Record::StepFinished(Box::new(record(
            native_summary,
            vec![],
        )))];
        write_batch(&mut b, &batch, &mut [Some(Box::new(rows))]).unwrap_or_else(|e| panic!("{e}"));
        let (rows_a, rows_b) = (rows_of(&a), rows_of(&b));
        assert!(rows_a.len() > 1 || capture_policy == Capture::Summary);
        assert_eq!(rows_a, rows_b, "{capture_policy:?}");
    }
}

#[test]
fn snapshots_written_from_the_arena_are_capped() {
    let (mut rows, _) = StepRows::new(arena(), crate::capture::Capture::All, &[]);
    rows.snapshot_cap = Some(200);
    let long = rows.snapshot(38).unwrap_or_default();
    assert!(
        long.len() <= 200 && long.contains("$xray_truncated"),
        "{long}"
    );
    let short = rows.snapshot(2).unwrap_or_default();
    assert_eq!(short, "{\"i\":2,\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"}");
}
