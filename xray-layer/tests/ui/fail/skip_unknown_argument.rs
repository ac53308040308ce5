#[xray::step(skip(candidate))]
fn filter(candidates: Vec<u32>, limit: u32) -> usize {
    candidates.iter().filter(|c| **c < limit).count()
}

fn main() {
    filter(vec![1], 2);
}
