#[xray::execution(name = "run", kind = "filter")]
fn run() {}

fn main() {
    run();
}
