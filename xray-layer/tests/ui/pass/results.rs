//! `Result` return types (std, aliases, error types with Display, Debug or neither) and `?`.

use std::fmt;

#[derive(Debug)]
enum ParseError {
    Empty,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("empty input")
    }
}

impl From<std::num::ParseIntError> for ParseError {
    fn from(_: std::num::ParseIntError) -> Self {
        ParseError::Empty
    }
}

#[derive(Debug)]
struct DebugOnly;

struct Opaque;

type MyResult<T> = std::result::Result<T, ParseError>;

#[xray::step]
fn parse(text: &str) -> Result<u32, ParseError> {
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    // `?` converts through `From`, as in the original function.
    let n: u32 = text.parse()?;
    Ok(n)
}

#[xray::step]
fn alias(text: &str) -> MyResult<u32> {
    Ok(parse(text)? + 1)
}

#[xray::step]
fn io_result(path: &str) -> std::io::Result<()> {
    let _ = path;
    Ok(())
}

#[xray::step]
fn debug_error() -> Result<u8, DebugOnly> {
    Err(DebugOnly)
}

#[xray::step(output = false)]
fn opaque_error() -> Result<u8, Opaque> {
    Err(Opaque)
}

#[xray::step]
fn boxed(text: &str) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    Ok(text.parse::<u32>()?)
}

#[xray::step]
fn option(text: &str) -> Option<u32> {
    let n = text.parse().ok()?;
    Some(n)
}

fn main() {
    assert_eq!(parse("7").ok(), Some(7));
    assert!(parse("").is_err());
    assert_eq!(alias("1").ok(), Some(2));
    assert!(io_result("x").is_ok());
    assert!(debug_error().is_err());
    assert!(opaque_error().is_err());
    assert!(boxed("x").is_err());
    assert_eq!(option("5"), Some(5));
    assert_eq!(option("x"), None);
}
