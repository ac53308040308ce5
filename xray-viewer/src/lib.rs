//! The X-Ray viewer: static HTML, CSS and JavaScript modules (no build step, nothing fetched
//! from outside), embedded into the binary for `xray-server` to serve at `/`.
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
