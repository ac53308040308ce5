#[xray::step(kindd = "filter")]
fn filter(values: Vec<u32>) -> Vec<u32> {
    values
}

fn main() {
    filter(vec![1]);
}
