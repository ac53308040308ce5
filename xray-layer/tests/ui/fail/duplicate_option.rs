#[xray::step(name = "a", kind = "filter", name = "b")]
fn filter(limit: u32) -> u32 {
    limit
}

fn main() {
    filter(1);
}
