struct Client {
    _url: String,
}

#[xray::step(kind = "search")]
fn search(client: &Client, query: &str) -> Vec<String> {
    let _ = client;
    vec![query.to_owned()]
}

fn main() {
    let client = Client {
        _url: String::new(),
    };
    search(&client, "stand");
}
