//! Async steps: `.await` inside, `?` in the body, references returned, and futures that stay
//! `Send` so they can be spawned on a multi-threaded runtime.

#[derive(Debug)]
struct Oops;

impl std::fmt::Display for Oops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oops")
    }
}

#[xray::step(kind = "search")]
async fn search(query: String, n: usize) -> Vec<String> {
    tokio::task::yield_now().await;
    (0..n).map(|i| format!("{query}-{i}")).collect()
}

#[xray::step]
async fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    let value: u32 = text.trim().parse()?;
    tokio::task::yield_now().await;
    Ok(value * 2)
}

#[xray::step(output = false)]
async fn checked(value: u32) -> Result<(), Oops> {
    if value == 0 {
        return Err(Oops);
    }
    Ok(())
}

#[xray::step]
async fn first<'a>(items: &'a [String]) -> Option<&'a String> {
    items.first()
}

#[xray::execution(name = "async pipeline", tags("async"))]
async fn pipeline() -> usize {
    let results = search("stand".to_owned(), 3).await;
    assert_eq!(first(&results).await.map(String::as_str), Some("stand-0"));
    assert_eq!(parse(" 21 ").await.ok(), Some(42));
    assert!(parse("x").await.is_err());
    assert!(checked(0).await.is_err());
    results.len()
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let n = runtime
        .block_on(runtime.spawn(assert_send(pipeline())))
        .expect("task");
    assert_eq!(n, 3);
}
