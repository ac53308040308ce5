#[xray::step]
struct Filter {
    limit: u32,
}

struct Ranker;

#[xray::step]
impl Ranker {
    fn rank(&self) {}
}

trait Score {
    #[xray::step]
    fn score(&self) -> f64;
}

fn main() {
    let _ = Filter { limit: 1 };
    Ranker.rank();
}
