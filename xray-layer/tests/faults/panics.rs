//! A panic inside a step, a hook, a processor, or the `Serialize` of a user type: the program
//! does what it does without X-Ray (same exit status, same output, same panic message), and
//! the record says what happened.

use crate::support::*;
use std::path::Path;

const STEPS: &str = "20";
const AT: u64 = 7;

/// Runs the child with and without X-Ray; the program's own behaviour must be the same.
fn with_and_without(db: &Path, panic: &str) -> Exited {
    let args = [
        "--steps",
        STEPS,
        "--progress-ms",
        "0",
        "--panic",
        panic,
        "--panic-at",
        "7",
    ];
    let with = Child::spawn(command(db, &args)).wait_exit();
    let mut bare = args.to_vec();
    bare.push("--no-xray");
    let without = Child::spawn(command(db, &bare)).wait_exit();
    assert_eq!(with.status.code(), without.status.code(), "{}", with.stderr);
    assert_eq!(with.app_lines(), without.app_lines());
    let panicked = |e: &Exited| {
        e.stderr
            .lines()
            .filter_map(|l| Some(l.split_once(" panicked at ")?.1.to_owned()))
            .collect::<Vec<_>>()
    };
    // The program's own panic messages are the same (X-Ray's caught ones come on top).
    if panic.starts_with("step") {
        assert_eq!(panicked(&with), panicked(&without), "{}", with.stderr);
        assert!(with.stderr.contains(&format!("step {AT} panicked")));
    }
    with
}

fn assert_all_ok_but(db: &Path, steps: u64, failed: Option<(u64, &str)>) {
    assert_eq!(integrity(db), "ok");
    let stored = stored_steps(db);
    assert_eq!(stored.len() as u64, steps, "{stored:#?}");
    for (n, step) in stored.iter().enumerate() {
        assert_eq!(step.i, n as u64);
        match failed {
            Some((at, error)) if at == step.i => {
                assert_eq!(step.status, "error", "{step:?}");
                let recorded = step.error.as_deref().unwrap_or_default();
                assert!(recorded.contains(error), "{recorded:?} lacks {error:?}");
            }
            _ => assert_eq!(step.status, "ok", "{step:?}"),
        }
        assert!(step.ended);
    }
}

#[test]
fn a_panic_in_a_step_kills_the_program_as_without_x_ray_and_the_step_is_recorded_failed() {
    let (_dir, db) = scratch();
    let exited = with_and_without(&db, "step");
    assert_eq!(exited.status.code(), Some(101));
    // The guard, dropped as the panic unwound main, wrote the failed step.
    assert_all_ok_but(&db, AT + 1, Some((AT, "panicked: step 7 panicked")));
}

#[test]
fn a_panic_in_a_step_the_program_catches_is_recorded_and_recording_goes_on() {
    let (_dir, db) = scratch();
    let exited = with_and_without(&db, "step-caught");
    assert!(exited.status.success());
    assert!(exited.app_lines()[0].contains("app caught i=7 message=step 7 panicked"));
    assert_all_ok_but(&db, 20, Some((AT, "panicked: step 7 panicked")));
}

#[test]
fn a_panic_in_a_hook_or_a_processor_is_counted_and_every_record_is_written() {
    for place in ["hook", "processor"] {
        let (_dir, db) = scratch();
        let exited = with_and_without(&db, place);
        assert!(exited.status.success(), "{place}: {}", exited.stderr);
        let f = exited.final_line();
        assert_eq!(f.u64("hook_panics"), 1, "{place}");
        assert_eq!((f.u64("written"), f.u64("failed")), (80, 0), "{place}");
        // The hook runs after the step ended as it did: the step is stored as it happened.
        assert_all_ok_but(&db, 20, None);
    }
}

#[test]
fn a_panic_in_a_user_serialize_does_not_reach_the_program_and_the_step_is_recorded_failed() {
    let (_dir, db) = scratch();
    // Without X-Ray nothing is serialized: the program runs to its end, and so it must with it.
    let exited = with_and_without(&db, "serialize");
    assert!(exited.status.success(), "{}", exited.stderr);
    assert_eq!(exited.final_line().u64("written"), 80);
    assert_all_ok_but(
        &db,
        20,
        Some((AT, "X-Ray could not record this step: Serialize panicked")),
    );
    let stored = stored_steps(&db);
    let input = stored[AT as usize].input.as_deref().unwrap_or_default();
    assert!(
        input.contains("<not recorded: Serialize panicked: Serialize of item 7 panicked>"),
        "{input}"
    );
}
