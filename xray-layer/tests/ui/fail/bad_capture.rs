#[xray::step(capture = "most")]
fn filter(limit: u32) -> u32 {
    limit
}

#[xray::step(capture = "100")]
fn quoted_cap(limit: u32) -> u32 {
    limit
}

fn main() {
    filter(1);
    quoted_cap(1);
}
