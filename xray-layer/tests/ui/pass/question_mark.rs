//! `?` and `return` inside a step's body behave as in the original function: they return from
//! the function, with the same conversions.

#[derive(Debug)]
struct AppError(String);

impl From<std::num::ParseIntError> for AppError {
    fn from(err: std::num::ParseIntError) -> Self {
        AppError(err.to_string())
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[xray::step]
fn sum(values: &[&str]) -> Result<u32, AppError> {
    let mut total = 0;
    for v in values {
        if v.is_empty() {
            return Err(AppError("empty".into()));
        }
        total += v.parse::<u32>()?;
    }
    Ok(total)
}

#[xray::step]
fn first_char(text: &str) -> Option<char> {
    let c = text.chars().next()?;
    Some(c.to_ascii_uppercase())
}

#[xray::step]
fn early(n: u32) -> u32 {
    if n > 10 {
        return 10;
    }
    n
}

#[xray::step]
fn labelled(rows: &[&[u32]]) -> Option<(usize, usize)> {
    let mut found = None;
    'rows: for (r, row) in rows.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            if *value == 0 {
                found = Some((r, c));
                break 'rows;
            }
        }
    }
    found
}

fn main() {
    assert_eq!(sum(&["1", "2"]).ok(), Some(3));
    assert!(sum(&["1", "x"]).is_err());
    assert!(sum(&[""]).is_err());
    assert_eq!(first_char("ab"), Some('A'));
    assert_eq!(first_char(""), None);
    assert_eq!(early(20), 10);
    assert_eq!(labelled(&[&[1, 2], &[3, 0]]), Some((1, 1)));
}
