//! Faults the instrumented program survives (issue 6). Each test runs the real layer in a child
//! process (`xray-fault-child`, see `tests/support/fault_child.rs`), injects one fault, and
//! checks what the program and a reader of its database would notice. The figures each test
//! prints (`FIGURE …`, visible with `--nocapture`) are the ones in RELIABILITY.md.
//!
//! The long versions (a 5 s lock, a flood of 1M steps) are `#[ignore]`d:
//! `cargo test -p xray-layer --release --test faults -- --ignored --nocapture --test-threads=1`.

mod disk_full;
mod file_faults;
mod flood;
mod kill;
mod lock;
mod panics;
mod support;
