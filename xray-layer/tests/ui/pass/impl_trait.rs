//! `impl Trait` return types (not recorded as output), also inside a `Result`.

#[xray::step]
fn evens(limit: u32) -> impl Iterator<Item = u32> {
    (0..limit).filter(|n| n % 2 == 0)
}

#[xray::step]
fn borrowed(values: &[u32]) -> impl Iterator<Item = &u32> + '_ {
    values.iter().rev()
}

#[xray::step]
fn fallible(limit: u32) -> Result<impl Iterator<Item = u32>, String> {
    if limit == 0 {
        return Err("no limit".to_owned());
    }
    Ok(0..limit)
}

#[xray::step]
async fn later(n: u32) -> impl std::fmt::Display {
    n + 1
}

fn main() {
    assert_eq!(evens(5).collect::<Vec<_>>(), vec![0, 2, 4]);
    assert_eq!(borrowed(&[1, 2]).copied().collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(fallible(3).map(|i| i.count()).ok(), Some(3));
    assert!(fallible(0).is_err());
    let shown = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(later(1))
        .to_string();
    assert_eq!(shown, "2");
}
