#[xray::step(level = "verbose")]
fn filter(limit: u32) -> u32 {
    limit
}

fn main() {
    filter(1);
}
