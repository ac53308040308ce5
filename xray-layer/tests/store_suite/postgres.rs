//! The PostgreSQL engine: every case of the suite on `xray::store::PostgresStore` (feature
//! `postgres`), each test on a database of its own.
//!
//! The server comes from `XRAY_TEST_POSTGRES_URL`, a URL of a database the tests may connect to
//! with the right to create databases, for example `postgres://postgres@127.0.0.1:5432/postgres`
//! (`eval "$(bash .ci/postgres.sh start)"` starts a throwaway server and exports it). Without it
//! the PostgreSQL tests print "skipped: set XRAY_TEST_POSTGRES_URL" and pass, unless
//! `XRAY_REQUIRE_POSTGRES=1`, where they fail.

use std::sync::atomic::{AtomicU64, Ordering};

const URL_VAR: &str = "XRAY_TEST_POSTGRES_URL";
const REQUIRE_VAR: &str = "XRAY_REQUIRE_POSTGRES";

/// Databases created by this process, numbered.
static CREATED: AtomicU64 = AtomicU64::new(0);

/// The server's URL, or `None` (with the skip printed) when none is configured.
fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            if std::env::var(REQUIRE_VAR).is_ok_and(|v| v.trim() == "1") {
                panic!(
                    "{REQUIRE_VAR}=1 but {URL_VAR} is not set: the PostgreSQL store cannot be \
                     tested. Start a server with `eval \"$(bash .ci/postgres.sh start)\"` (it \
                     exports {URL_VAR}), or unset {REQUIRE_VAR} to skip these tests"
                );
            }
            println!("skipped: set {URL_VAR}");
            None
        }
    }
}

/// A new, empty database on the server of `XRAY_TEST_POSTGRES_URL`, named
/// `xray_t_<pid>_<counter>`; returns its URL: the server's URL with the database name replaced
/// (`postgres://postgres@127.0.0.1:PORT/xray_t_123_0`, query parameters kept), or with
/// `dbname=…` appended when the variable holds a `key=value` connection string.
///
/// `None` when the variable is unset (see the module's documentation). Panics when the server
/// cannot be reached or the database cannot be created: a configured server that does not work
/// is a failure, not a skip.
pub fn fresh_database() -> Option<String> {
    create_database().map(|db| db.url)
}

/// A database made by [`create_database`].
struct Database {
    server: String,
    name: String,
    url: String,
}

fn create_database() -> Option<Database> {
    let server = server_url()?;
    let name = format!(
        "xray_t_{}_{}",
        std::process::id(),
        CREATED.fetch_add(1, Ordering::Relaxed)
    );
    let mut client = connect(&server);
    // A database of a dead process that had this pid: its tests are over. (Two statements: a
    // multi-statement query is one transaction, which CREATE DATABASE refuses.)
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql} on {server}: {}", describe(&e)));
    }
    Some(Database {
        url: database_url(&server, &name),
        server,
        name,
    })
}

fn connect(url: &str) -> ::postgres::Client {
    ::postgres::Client::connect(url, ::postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "cannot connect to the PostgreSQL server at {url}: {}",
            describe(&e)
        )
    })
}

/// The server's message, not just "db error".
fn describe(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// `server` with its database replaced by `name`.
fn database_url(server: &str, name: &str) -> String {
    let Some(scheme_end) = server
        .strip_prefix("postgres://")
        .or_else(|| server.strip_prefix("postgresql://"))
        .map(|rest| server.len() - rest.len())
    else {
        // A key=value connection string: a later `dbname` overrides an earlier one.
        return format!("{server} dbname={name}");
    };
    let rest = &server[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |at| &tail[at..]);
    format!("{}{authority}/{name}{query}", &server[..scheme_end])
}

/// Drops its database when the test is over, unless the test failed (the database is then kept
/// to look at; the server is a throwaway one).
struct DropOnExit {
    server: String,
    name: String,
}

impl Drop for DropOnExit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept database {} for inspection", self.name);
            return;
        }
        if let Ok(mut client) = ::postgres::Client::connect(&self.server, ::postgres::NoTls) {
            // FORCE (PostgreSQL 13+): a store's pooled connections may still be closing.
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The engine's database for one test.
#[cfg(feature = "postgres")]
fn db() -> Option<crate::fixtures::Db> {
    let Database { server, name, url } = create_database()?;
    Some(crate::fixtures::Db::new(
        move || -> Box<dyn xray::store::Store> {
            Box::new(xray::store::PostgresStore::open(&url).expect("the PostgreSQL store opens"))
        },
        DropOnExit { server, name },
    ))
}

#[cfg(feature = "postgres")]
suite!(@cases db());

#[test]
fn fresh_database_is_new_empty_and_reachable_at_its_url() {
    let Some(url) = fresh_database() else {
        return;
    };
    let first = create_database().expect("a second database");
    assert_ne!(url, first.url, "each call makes a new database");
    connect(&url);
    let fresh_name = url.rsplit('/').next().unwrap_or_default().to_owned();
    drop(DropOnExit {
        server: first.server.clone(),
        name: fresh_name,
    });
    let mut client = connect(&first.url);
    let row = client
        .query_one(
            "SELECT current_database()::text, \
             (SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public')",
            &[],
        )
        .expect("query the new database");
    let (name, tables): (String, i64) = (row.get(0), row.get(1));
    assert_eq!(name, first.name);
    assert!(
        name.starts_with(&format!("xray_t_{}_", std::process::id())),
        "{name}"
    );
    assert!(
        first.url.ends_with(&format!("/{name}")),
        "{} names {name}",
        first.url
    );
    assert_eq!(tables, 0, "the database is empty");
    // Dropped when the test is over, with every connection closed or not.
    let mut server = connect(&first.server);
    drop(DropOnExit {
        server: first.server,
        name: first.name,
    });
    let left: i64 = server
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .expect("list databases")
        .get(0);
    assert_eq!(left, 0, "the test's database is dropped after it");
    drop(client);
}

#[test]
fn database_urls_replace_only_the_database() {
    assert_eq!(
        database_url("postgres://postgres@127.0.0.1:5432/postgres", "x_1"),
        "postgres://postgres@127.0.0.1:5432/x_1"
    );
    assert_eq!(
        database_url("postgresql://u:p@h:1/db?sslmode=disable", "x_1"),
        "postgresql://u:p@h:1/x_1?sslmode=disable"
    );
    assert_eq!(database_url("postgres://h:1", "x_1"), "postgres://h:1/x_1");
    assert_eq!(
        database_url("postgres://h:1?connect_timeout=5", "x_1"),
        "postgres://h:1/x_1?connect_timeout=5"
    );
    assert_eq!(
        database_url(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
            "x_1"
        ),
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres dbname=x_1"
    );
}
