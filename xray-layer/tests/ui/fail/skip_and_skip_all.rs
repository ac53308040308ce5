#[xray::step(skip(limit), skip_all)]
fn filter(limit: u32) -> u32 {
    limit
}

fn main() {
    filter(1);
}
