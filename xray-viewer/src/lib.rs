//! The X-Ray viewer: static HTML, CSS and JavaScript modules (no build step, nothing fetched
//! from outside), embedded into the binary for `xray-server` to serve at `/`.
//!
//! A person who suspects a bad decision opens it and finds, in a few clicks, the step and the
//! check that caused it. Every view has a URL (History API; the server answers any path without
//! an extension with `index.html`):
//!
//! | URL | view (`assets/js/views/`) |
//! |---|---|
//! | `/`, `/runs?name=&status=&tag=&since=&until=&q=` | `runs.js`: runs newest first, filters, live |
//! | `/runs/{id}` | `run.js`: step waterfall, funnel with the loss per check, tags and notes, export |
//! | `/steps/{id}?verdict=&check=&sort=&q=` | `step.js`: payloads, selection, reasoning, logs, the candidates table |
//! | `/candidates?id=` | `candidate.js`: a candidate's path through every run |
//! | `/steps?kind=&name=&min_elimination=…` | `steps-query.js`: steps across runs |
//! | `/compare?a=&b=` | `compare.js`: two runs side by side, changed verdicts with reasons |
//! | `/analytics` | `analytics.js`: per step name, p50/p95, error rate, elimination |
//!
//! The rest of `assets/js/`: `app.js` (the shell: navigation, the live indicator, the token
//! prompt), `api.js` (the API client), `live.js` (the WebSocket, reconnecting with `since`),
//! `router.js`, `shortcuts.js` (`?` lists them), `dom.js`, `format.js`, `state.js`, and the
//! components: `json-tree.js` (lazy, chunked, says when a payload was truncated),
//! `virtual-table.js` (only the rows in view exist; pages fetched as they come into view),
//! `funnel.js`, `waterfall.js`. The page obeys the server's CSP: no inline script or style
//! attribute (styles set from script go through the CSSOM).
//!
//! `xray-server/tests/viewer_browser.rs` drives it in headless Chromium; `tests/assets.rs` here
//! keeps it under 300 KB.
//!
//! The Rust side only hands out the files with their content types:
//!
//! ```
//! let index = xray_viewer::asset("index.html").expect("the viewer has an index");
//! assert_eq!(index.content_type, "text/html; charset=utf-8");
//! assert!(xray_viewer::assets().all(|a| !a.bytes.is_empty()));
//! ```

use include_dir::{include_dir, Dir, File};

static ASSETS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/assets");

/// One embedded file.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// Its path under the viewer's root, with `/` separators (`js/api.js`).
    pub path: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

/// The file at `path` (`index.html`, `js/app.js`), if the viewer has it.
pub fn asset(path: &str) -> Option<Asset> {
    ASSETS.get_file(path).map(to_asset)
}

/// Every embedded file.
pub fn assets() -> impl Iterator<Item = Asset> {
    let mut files = Vec::new();
    collect(&ASSETS, &mut files);
    files.into_iter()
}

fn collect(dir: &'static Dir<'static>, out: &mut Vec<Asset>) {
    out.extend(dir.files().map(to_asset));
    for sub in dir.dirs() {
        collect(sub, out);
    }
}

fn to_asset(file: &'static File<'static>) -> Asset {
    let path = file.path().to_str().unwrap_or("");
    Asset {
        path,
        bytes: file.contents(),
        content_type: content_type(path),
    }
}

/// The `Content-Type` for a file name, by extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
