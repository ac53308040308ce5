//! A run whose one filter step judges `count` candidates (`V0000`, `V0001`, …), all passing or
//! all failing: two such runs differ in every verdict, to page and count the changes through.
//! A failing run fails every third candidate (`V0000`, `V0003`, …) on price, the others on
//! stock, so that the changes split between two checks.

/// Judges `count` candidates, each with the verdict `pass`.
#[xray::step(kind = "filter")]
pub fn judge_all(count: u32, pass: bool) -> usize {
    (0..count)
        .filter(|i| {
            xray::evaluate(format!("V{i:04}"))
                .check("in stock", pass || i % 3 == 0, "out of stock")
                .check("price", pass || i % 3 != 0, "over budget")
                .passed()
        })
        .count()
}

/// A run of [`judge_all`].
#[xray::execution(name = "verdicts")]
pub fn verdict_run(count: u32, pass: bool) -> usize {
    judge_all(count, pass)
}
