#[xray::step]
const fn limit() -> u32 {
    3
}

fn main() {
    let _ = limit();
}
