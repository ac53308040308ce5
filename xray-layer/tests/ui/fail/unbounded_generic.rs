#[xray::step]
fn identity<T>(value: T) -> u32 {
    let _ = value;
    1
}

fn main() {
    identity(3);
}
