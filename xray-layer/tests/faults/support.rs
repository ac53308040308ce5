//! Running `xray-fault-child`, reading what it says, and reading the database it leaves.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The child program, built by Cargo for this package's integration tests.
pub const CHILD: &str = env!("CARGO_BIN_EXE_xray-fault-child");

/// How long to await anything the child should do soon: generous, because this machine is
/// shared. Reaching it is a hang, and fails the test.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// One line the child printed: `word key=value key=value …` (the last value may hold spaces
/// when its key is `error` or `message`).
#[derive(Clone, Debug)]
pub struct Line {
    pub word: String,
    pub fields: HashMap<String, String>,
    pub raw: String,
}

impl Line {
    fn parse(raw: String) -> Line {
        let (word, rest) = raw.split_once(' ').unwrap_or((raw.as_str(), ""));
        let mut fields = HashMap::new();
        let mut rest = rest;
        while let Some((key, after)) = rest.split_once('=') {
            let key = key.trim();
            if key == "error" || key == "message" {
                fields.insert(key.to_owned(), after.to_owned());
                break;
            }
            let (value, next) = after.split_once(' ').unwrap_or((after, ""));
            fields.insert(key.to_owned(), value.to_owned());
            rest = next;
        }
        Line {
            word: word.to_owned(),
            fields,
            raw,
        }
    }

    /// A numeric field; a missing one is a bug in the test or the child.
    pub fn u64(&self, key: &str) -> u64 {
        self.fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number `{key}` in {:?}", self.raw))
    }

    pub fn str(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .map_or_else(|| panic!("no `{key}` in {:?}", self.raw), String::as_str)
    }
}

/// A running child.
pub struct Child {
    child: std::process::Child,
    lines: Receiver<String>,
    /// Every line read so far.
    pub log: Vec<Line>,
    stderr: Arc<Mutex<String>>,
}

/// A child that has exited.
pub struct Exited {
    pub status: ExitStatus,
    pub log: Vec<Line>,
    pub stderr: String,
}

impl Exited {
    /// The last line starting with `word`.
    pub fn last(&self, word: &str) -> Option<&Line> {
        self.log.iter().rev().find(|l| l.word == word)
    }

    pub fn final_line(&self) -> &Line {
        self.last("final").unwrap_or_else(|| {
            panic!(
                "the child printed no final line; status {:?}\nstdout: {:#?}\nstderr: {}",
                self.status, self.log, self.stderr
            )
        })
    }

    /// The lines the program itself printed (`app …`), the same with or without X-Ray.
    pub fn app_lines(&self) -> Vec<&str> {
        self.log
            .iter()
            .filter(|l| l.word == "app")
            .map(|l| l.raw.as_str())
            .collect()
    }
}

pub fn command(db: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(CHILD);
    cmd.arg("--db")
        .arg(db)
        .args(args)
        .env("RUST_BACKTRACE", "0");
    cmd
}

impl Child {
    pub fn spawn(mut cmd: Command) -> Child {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the fault child starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            if let Ok(mut s) = sink.lock() {
                s.push_str(&text);
            }
        });
        Child {
            child,
            lines,
            log: Vec::new(),
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid fits an i32")
    }

    /// Awaits a line for which `pred` holds (at most [`PATIENCE`]); panics with what the child
    /// said if it exits or takes longer.
    pub fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&Line) -> bool) -> Line {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(raw) => {
                    let line = Line::parse(raw);
                    self.log.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(e) => {
                    let how = match e {
                        RecvTimeoutError::Timeout => "did not happen in time",
                        RecvTimeoutError::Disconnected => "never happened: the child exited",
                    };
                    let status = self.child.try_wait();
                    panic!(
                        "{what} {how} ({status:?})\nstdout: {:#?}\nstderr: {}",
                        self.log,
                        self.stderr()
                    );
                }
            }
        }
    }

    /// Awaits a progress line for which `pred` holds.
    pub fn wait_progress(&mut self, what: &str, mut pred: impl FnMut(&Line) -> bool) -> Line {
        self.wait_for(what, |l| l.word == "progress" && pred(l))
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Closes stdin (the child stops stepping) and awaits its exit.
    pub fn stop(mut self) -> Exited {
        drop(self.child.stdin.take());
        self.wait_exit()
    }

    /// Awaits the child's exit (at most [`PATIENCE`]) and everything it printed.
    pub fn wait_exit(mut self) -> Exited {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(raw) => self.log.push(Line::parse(raw)),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "the child did not exit in time\nstdout: {:#?}\nstderr: {}",
                        self.log,
                        self.stderr()
                    );
                }
            }
        }
        let status = self.child.wait().expect("wait for the child");
        // stdout is closed; stderr closes at the same exit.
        let stderr_done = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.stderr) > 1 && Instant::now() < stderr_done {
            std::thread::sleep(Duration::from_millis(5));
        }
        Exited {
            status,
            stderr: self.stderr(),
            log: self.log,
        }
    }

    /// SIGKILL, then everything the child printed before it died.
    pub fn kill(mut self) -> Exited {
        self.child.kill().expect("SIGKILL the child");
        self.wait_exit()
    }
}

/// Unix time in µs, as the child prints it.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A fresh directory with the path of a database in it.
pub fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("xray-faults-")
        .tempdir()
        .expect("tempdir");
    let db = dir.path().join("xray.db");
    (dir, db)
}

/// `PRAGMA integrity_check` of the file, opened the way any SQLite client opens it.
pub fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("the database opens");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .expect("integrity_check runs")
}

/// One `judge` step as stored.
#[derive(Debug)]
pub struct StoredStep {
    pub i: u64,
    pub status: String,
    pub ended: bool,
    pub evaluations: u64,
    pub error: Option<String>,
    pub input: Option<String>,
}

/// Every step in the database, by index.
pub fn stored_steps(db: &Path) -> Vec<StoredStep> {
    let conn = rusqlite::Connection::open(db).expect("the database opens");
    let mut stmt = conn
        .prepare(
            "SELECT json_extract(s.input, '$.i'), s.status, s.ended_at IS NOT NULL,
                    (SELECT count(*) FROM evaluations e WHERE e.step_sid = s.sid),
                    s.error, s.input
             FROM steps s ORDER BY 1",
        )
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok(StoredStep {
                i: r.get::<_, Option<i64>>(0)?.map_or(u64::MAX, |i| i as u64),
                status: r.get(1)?,
                ended: r.get(2)?,
                evaluations: r.get::<_, i64>(3)? as u64,
                error: r.get(4)?,
                input: r.get(5)?,
            })
        })
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// The dropped and failed counters stored in the database, read through the store API.
pub fn stored_counts(db: &Path) -> xray::store::RecorderCounts {
    use xray::store::Store;
    xray::store::SqliteStore::open(db)
        .expect("X-Ray opens the database")
        .recorder_counts()
        .expect("counts")
}

/// Prints a measured figure (see RELIABILITY.md); visible with `--nocapture`.
pub fn figure(name: &str, text: std::fmt::Arguments<'_>) {
    println!("FIGURE {name}: {text}");
}
