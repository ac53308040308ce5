//! A fresh PostgreSQL database per test, on the server named by `XRAY_TEST_POSTGRES_URL`
//! (`eval "$(bash .ci/postgres.sh start)"` starts one; `.ci/run` does).
//!
//! Without the variable a PostgreSQL test passes with a "skipped" line on stderr, so that
//! `cargo test` works on a machine without PostgreSQL; with `XRAY_REQUIRE_POSTGRES=1` (set by
//! `.ci/run`) it fails instead.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The URL of a new, empty database, or `None` (test skipped) when no server is configured.
pub fn fresh_database() -> Option<String> {
    let Ok(server) = std::env::var("XRAY_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("XRAY_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "XRAY_REQUIRE_POSTGRES=1 but XRAY_TEST_POSTGRES_URL is not set: start a server with \
             `eval \"$(bash .ci/postgres.sh start)\"`"
        );
        eprintln!("skipped: set XRAY_TEST_POSTGRES_URL to run the PostgreSQL tests");
        return None;
    };
    let name = format!(
        "xray_t_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        uuid::Uuid::now_v7().simple()
    );
    let mut admin = postgres::Client::connect(&server, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to {server}: {e}"));
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    Some(with_database(&server, &name))
}

/// `server` with its database replaced by `name`.
pub fn with_database(server: &str, name: &str) -> String {
    let base = match server.rfind('/') {
        Some(i) if i > server.find("://").map_or(0, |s| s + 2) => &server[..i],
        _ => server,
    };
    let query = server.find('?').map_or("", |i| &server[i..]);
    format!("{base}/{name}{query}")
}
