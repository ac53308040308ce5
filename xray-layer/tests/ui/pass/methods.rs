//! Methods: `&self`, `&mut self`, `self`, `input = ..` reading `self`, trait impls, and
//! returning references tied to `self`.

use serde::Serialize;

#[derive(Serialize, Debug, Default)]
struct Ranker {
    weights: Vec<f64>,
    calls: u32,
}

trait Score {
    fn score(&self, x: f64) -> f64;
}

impl Ranker {
    #[xray::step(kind = "rank")]
    fn rank(&self, values: Vec<f64>) -> Vec<f64> {
        values.iter().map(|v| self.score(*v)).collect()
    }

    #[xray::step(input = (&self.weights, extra))]
    fn add(&mut self, extra: f64) -> usize {
        self.calls += 1;
        self.weights.push(extra);
        self.weights.len()
    }

    #[xray::step(skip(self))]
    fn weights_mut(&mut self) -> &mut Vec<f64> {
        &mut self.weights
    }

    #[xray::step]
    fn first_weight(&self) -> Option<&f64> {
        self.weights.first()
    }

    #[xray::step]
    fn into_calls(self) -> u32 {
        self.calls
    }

    #[xray::step]
    async fn total(&self) -> f64 {
        self.weights.iter().sum()
    }

    #[xray::step(name = "new ranker")]
    fn new() -> Self {
        Self::default()
    }
}

impl Score for Ranker {
    #[xray::step(kind = "score")]
    fn score(&self, x: f64) -> f64 {
        x * self.weights.first().copied().unwrap_or(1.0)
    }
}

fn main() {
    let mut ranker = Ranker::new();
    assert_eq!(ranker.add(2.0), 1);
    ranker.weights_mut().push(3.0);
    assert_eq!(ranker.first_weight(), Some(&2.0));
    assert_eq!(ranker.rank(vec![1.0, 2.0]), vec![2.0, 4.0]);
    let total = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(ranker.total());
    assert_eq!(total, 5.0);
    assert_eq!(ranker.into_calls(), 1);
}
