//! The embedded viewer: small enough, complete, and within the server's Content-Security-Policy.

/// The whole viewer (HTML, CSS, JavaScript, icon), uncompressed.
const MAX_BYTES: usize = 300 * 1024;

#[test]
fn the_whole_viewer_weighs_at_most_300_kb() {
    let total: usize = xray_viewer::assets().map(|a| a.bytes.len()).sum();
    println!("the viewer's files: {total} bytes");
    assert!(
        total <= MAX_BYTES,
        "the viewer is {total} bytes, over the {MAX_BYTES}-byte budget"
    );
    assert!(total > 10_000, "the viewer is embedded ({total} bytes)");
}

#[test]
fn every_module_import_resolves_to_an_embedded_file() {
    for asset in xray_viewer::assets().filter(|a| a.path.ends_with(".js")) {
        let text = std::str::from_utf8(asset.bytes).expect("JavaScript is UTF-8");
        let dir = asset.path.rsplit_once('/').map_or("", |(d, _)| d);
        for line in text.lines().filter(|l| l.starts_with("import ")) {
            let Some(spec) = line.split(['\'', '"']).nth(1) else {
                continue;
            };
            let mut parts: Vec<&str> = if dir.is_empty() {
                Vec::new()
            } else {
                dir.split('/').collect()
            };
            for seg in spec.split('/') {
                match seg {
                    "." => {}
                    ".." => {
                        parts.pop();
                    }
                    s => parts.push(s),
                }
            }
            let target = parts.join("/");
            assert!(
                xray_viewer::asset(&target).is_some(),
                "{} imports {spec}, which is not embedded ({target})",
                asset.path
            );
        }
    }
}

#[test]
fn the_page_has_no_inline_script_or_style() {
    let index = xray_viewer::asset("index.html").expect("an index");
    let html = std::str::from_utf8(index.bytes).expect("UTF-8");
    assert!(
        !html.contains(" style="),
        "no inline style attribute (CSP style-src 'self')"
    );
    for tag in html.split("<script").skip(1) {
        let head = tag.split('>').next().unwrap_or("");
        assert!(
            head.contains("src="),
            "no inline script (CSP script-src 'self')"
        );
    }
    for asset in xray_viewer::assets().filter(|a| a.path.ends_with(".js")) {
        let text = std::str::from_utf8(asset.bytes).expect("UTF-8");
        assert!(
            !text.contains("innerHTML") && !text.contains("setAttribute('style'"),
            "{} builds DOM without innerHTML or style attributes",
            asset.path
        );
    }
}
