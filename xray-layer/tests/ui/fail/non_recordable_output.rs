struct Connection;

#[xray::step]
fn connect(url: &str) -> Connection {
    let _ = url;
    Connection
}

fn main() {
    connect("db");
}
