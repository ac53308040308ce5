//! The `xray-server` binary: clear messages and exit codes for a bad database or bad flags,
//! `--help` documenting every flag; and, in-process, retention and a database whose schema
//! appears after the server started.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

fn server_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xray-server"))
}

#[test]
fn a_missing_or_foreign_database_is_a_clear_message_and_exit_code_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.db");
    let out = server_bin()
        .args([
            "--db",
            missing.to_str().expect("utf-8"),
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no database at"), "{stderr}");
    assert!(stderr.contains("nope.db"), "{stderr}");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 8192]).expect("write");
    let out = server_bin()
        .args([
            "--db",
            garbage.to_str().expect("utf-8"),
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not an X-Ray database"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_flags_exit_2_and_help_documents_every_flag() {
    let out = server_bin()
        .args(["--retain", "soon"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--retain"));
    let out = server_bin().arg("--help").output().expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--db",
        "--addr",
        "--token",
        "--cors-origin",
        "--rate-limit",
        "--retain",
        "--max-body",
        "XRAY_DB",
        "XRAY_ADDR",
        "XRAY_TOKEN",
        "Exit codes",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}

#[test]
fn the_binary_serves_a_database_the_layer_wrote() {
    use std::io::{BufRead, BufReader};
    let recorded = record(&[3.8]);
    let mut child = server_bin()
        .args([
            "--db",
            recorded.path.to_str().expect("utf-8"),
            "--addr",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the URL is printed")
        .trim_end_matches('/')
        .to_owned();
    let reply: serde_json::Value = ureq::get(&format!("{url}/api/v1/executions"))
        .call()
        .expect("answers")
        .into_json()
        .expect("json");
    child.kill().ok();
    child.wait().ok();
    assert_eq!(reply["items"].as_array().expect("items").len(), 1);
}

/// Polls `check` every 20 ms until it holds, for at most `within`.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

#[test]
fn retention_deletes_old_executions_in_the_background_and_keeps_recent_ones() {
    use xray::store::Store;
    let recorded = record(&[3.8]);
    let recent = execution_ids(&serve(&recorded.path, |_| {}));
    // A run from two days ago, written straight into the file.
    let old = uuid::Uuid::now_v7();
    let two_days_ago = xray::model::now_us() - 2 * 86_400 * 1_000_000;
    xray::store::SqliteStore::open(&recorded.path)
        .expect("open")
        .write(&[xray::model::Record::ExecutionStarted(
            xray::model::ExecutionStart {
                id: old,
                name: "competitor_selection".into(),
                started_at: two_days_ago,
                tags: vec![],
                metadata: Default::default(),
                service: None,
                host: None,
                pid: None,
            },
        )])
        .expect("write");
    let server = serve(&recorded.path, |c| {
        c.retain = Some(Duration::from_secs(86_400))
    });
    assert!(
        eventually(Duration::from_secs(10), || execution_ids(&server) == recent),
        "the two-day-old run is deleted, the recent one stays: {:?}",
        execution_ids(&server)
    );
}

#[test]
fn a_server_started_before_the_program_shows_its_runs_when_they_arrive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("xray.db");
    std::fs::File::create(&path).expect("an empty file, as a program creates it");
    let server = serve(&path, |_| {});
    assert!(execution_ids(&server).is_empty());
    record_into(&path, &[3.8, 4.0]);
    assert!(eventually(Duration::from_secs(10), || execution_ids(
        &server
    )
    .len()
        == 2));
}
