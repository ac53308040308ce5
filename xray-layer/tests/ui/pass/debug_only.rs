//! Arguments and outputs that implement `Debug` but not `Serialize` are recorded as Debug text.

#[derive(Debug, Clone, PartialEq)]
struct Config {
    threshold: f64,
}

#[xray::step(metadata(config = Config { threshold: 0.5 }))]
fn configure(config: Config, name: &str) -> Config {
    let _ = name;
    Config {
        threshold: config.threshold * 2.0,
    }
}

fn main() {
    assert_eq!(
        configure(Config { threshold: 1.0 }, "x"),
        Config { threshold: 2.0 }
    );
}
