//! Running the built examples as a user would: as child processes, with their output read line
//! by line and awaited with a timeout.

#![allow(dead_code)] // each test binary uses part of it

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The executable of example `name`, which `cargo test` builds next to the test binaries.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let path = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: `cargo test -p xray-examples` builds the examples; \
         `cargo build -p xray-examples --examples` does too",
        path.display()
    );
    path
}

/// A running example whose stdout is read by a thread; killed on drop.
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(mut command: Command) -> Running {
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().expect("the example starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`, and returns it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line containing {needle:?} within {timeout:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the example ended before printing {needle:?}; output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs an example to completion within `timeout`, returning its stdout; panics with the output
/// if it fails or takes longer.
pub fn run_to_completion(mut command: Command, timeout: Duration) -> String {
    let mut running = Running::start({
        command.stdin(Stdio::null());
        command
    });
    let deadline = Instant::now() + timeout;
    loop {
        // Drain output so the child never blocks on a full pipe.
        while let Ok(line) = running.lines.try_recv() {
            running.seen.push(line);
        }
        if let Some(status) = running.child.try_wait().expect("waiting on the example") {
            while let Ok(line) = running.lines.recv_timeout(Duration::from_secs(5)) {
                running.seen.push(line);
            }
            let out = running.seen.join("\n");
            assert!(
                status.success(),
                "the example exited with {status}; output:\n{out}"
            );
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "the example did not finish within {timeout:?}; output so far:\n{}",
            running.seen.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GET `url` and parse its JSON body, failing with the body when the status is not 200.
pub fn get_json(url: &str) -> serde_json::Value {
    match ureq::get(url).call() {
        Ok(reply) => reply.into_json().expect("a JSON body"),
        Err(ureq::Error::Status(code, reply)) => panic!(
            "GET {url} -> {code}: {}",
            reply.into_string().unwrap_or_default()
        ),
        Err(e) => panic!("GET {url}: {e}"),
    }
}
