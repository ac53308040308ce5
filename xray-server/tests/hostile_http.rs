//! Hostile HTTP against a real server: the token on every route of the OpenAPI document,
//! security headers on every kind of response, path traversal against the viewer, oversized
//! heads and bodies, slow-loris headers, CORS from origins that are not listed, and the CSP the
//! viewer is served with.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

const TOKEN: &str = "s3cret-token-0123456789";

/// A raw response: status, lower-cased headers, body.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` verbatim on a new connection and reads the answer until the server closes.
fn raw(server: &Server, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(server.inner.local_addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(request).expect("send");
    let mut bytes = Vec::new();
    // A reset after the answer (the server closing on an unread body) still leaves the answer.
    let _ = stream.read_to_end(&mut bytes);
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Raw {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..split]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = bytes.get(split + 4..).unwrap_or_default().to_vec();
    Raw {
        status,
        headers,
        body,
    }
}

fn get(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n")
        .into_bytes()
}

/// The security headers every response carries; the problems, if any.
fn missing_security_headers(headers: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    match headers("content-security-policy") {
        None => problems.push("no CSP".to_owned()),
        Some(csp) => {
            for needed in [
                "script-src 'self'",
                "object-src 'none'",
                "frame-ancestors 'none'",
                "base-uri 'none'",
            ] {
                if !csp.contains(needed) {
                    problems.push(format!("CSP without {needed}: {csp}"));
                }
            }
            for banned in ["unsafe-inline", "unsafe-eval", "*"] {
                if csp.contains(banned) {
                    problems.push(format!("CSP allows {banned}: {csp}"));
                }
            }
        }
    }
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        if headers(name).as_deref() != Some(value) {
            problems.push(format!("{name}: {:?}", headers(name)));
        }
    }
    problems
}

/// The OpenAPI document's operations: (method, path with its parameters filled in, body).
fn operations(run: &str, step: &str) -> Vec<(String, String, Option<String>)> {
    let doc: serde_json::Value =
        serde_json::from_str(xray_server::api::meta::OPENAPI).expect("the OpenAPI document");
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = Vec::new();
    for (pattern, item) in paths {
        let path = if pattern.starts_with("/api/v1/steps/") {
            pattern.replace("{id}", step)
        } else {
            pattern.replace("{id}", run)
        }
        .replace("{candidate_id}", "B00001");
        assert!(!path.contains('{'), "a path parameter left in {path}");
        for method in item.as_object().expect("operations").keys() {
            let method = method.to_ascii_uppercase();
            // Bodies that change nothing when they are let through.
            let body = match method.as_str() {
                "PATCH" => Some("{}".to_owned()),
                "DELETE" => Some(r#"{"ids": ["01900000-0000-7000-8000-000000000000"]}"#.into()),
                "POST" => Some(r#"{"xray_export": 1, "executions": []}"#.into()),
                _ => None,
            };
            if method == "GET" {
                out.push(("HEAD".to_owned(), path.clone(), None));
            }
            out.push((method, path.clone(), body));
        }
    }
    out
}

#[test]
fn with_a_token_every_route_in_the_openapi_document_refuses_without_it() {
    let recorded = record(&[3.8]);
    let server = serve(&recorded.path, |c| {
        c.token = Some(TOKEN.into());
        c.rate_limit_per_minute = 0;
    });
    let bearer = format!("Bearer {TOKEN}");
    let good = [("Authorization", bearer.as_str())];
    let run = server.call("GET", "/api/v1/executions", &good, None).json()["items"][0]["id"]
        .as_str()
        .expect("a run")
        .to_owned();
    let detail = server.call("GET", &format!("/api/v1/executions/{run}"), &good, None);
    let step = detail.json()["steps"][2]["id"]
        .as_str()
        .expect("a step")
        .to_owned();
    // Wrong tokens of the same length, differing in the first byte, the last byte, and in case;
    // the token alone without its scheme; an empty bearer.
    let first = format!("Bearer X{}", &TOKEN[1..]);
    let last = format!("Bearer {}X", &TOKEN[..TOKEN.len() - 1]);
    let case = format!("Bearer {}", TOKEN.to_uppercase());
    let wrong: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("Authorization", first.as_str())],
        vec![("Authorization", last.as_str())],
        vec![("Authorization", case.as_str())],
        vec![("Authorization", TOKEN)],
        vec![("Authorization", "Bearer ")],
        vec![("Sec-WebSocket-Protocol", "xray, bearer.wrong")],
    ];
    let operations = operations(&run, &step);
    assert!(
        operations.len() >= 20,
        "the walk covers the API: {operations:?}"
    );
    let mut failures = Vec::new();
    for (method, path, body) in &operations {
        let public = path == "/api/v1/health";
        for headers in &wrong {
            let reply = server.call(method, path, headers, body.as_deref());
            let expected = if public { 200 } else { 401 };
            if reply.status != expected {
                failures.push(format!(
                    "{method} {path} with {headers:?}: {} {}",
                    reply.status, reply.body
                ));
            } else if !public
                && method != "HEAD"
                && reply.error_field().as_deref() != Some("Authorization")
            {
                failures.push(format!("{method} {path}: the 401 names no Authorization"));
            }
        }
        let reply = server.call(method, path, &good, body.as_deref());
        if reply.status == 401 || reply.status >= 500 {
            failures.push(format!(
                "{method} {path} with the token: {} {}",
                reply.status, reply.body
            ));
        }
    }
    // The viewer's files are public: the page has to load to ask for the token.
    for asset in xray_viewer::assets() {
        let reply = server.get(&format!("/{}", asset.path));
        if reply.status != 200 {
            failures.push(format!(
                "/{} without the token: {}",
                asset.path, reply.status
            ));
        }
    }
    for path in ["/", "/runs/x", "/steps"] {
        if server.get(path).status != 200 {
            failures.push(format!("{path} without the token"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        server.call("GET", "/api/v1/executions", &good, None).json()["items"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "the refused writes changed nothing"
    );
}

#[test]
fn every_kind_of_response_carries_the_security_headers() {
    let recorded = record(&[3.8]);
    let server = serve(&recorded.path, |c| {
        c.token = Some(TOKEN.into());
        c.cors_origins = vec!["https://tools.example.com".into()];
        c.max_body_bytes = 1024;
    });
    let bearer = format!("Bearer {TOKEN}");
    let auth = format!("Authorization: {bearer}\r\n");
    let run = server
        .call(
            "GET",
            "/api/v1/executions",
            &[("Authorization", &bearer)],
            None,
        )
        .json()["items"][0]["id"]
        .as_str()
        .expect("a run")
        .to_owned();
    let etag = server
        .call(
            "GET",
            &format!("/api/v1/executions/{run}"),
            &[("Authorization", &bearer)],
            None,
        )
        .header("etag")
        .expect("an ETag")
        .to_owned();
    let index_tag = server.get("/").header("etag").expect("an ETag").to_owned();
    let big = format!(
        "POST /api/v1/ingest HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 4096\r\nConnection: close\r\n\r\n{}",
        "x".repeat(4096)
    );
    let requests: Vec<(&str, u16, Vec<u8>)> = vec![
        ("the viewer", 200, get("/", "")),
        ("a viewer file", 200, get("/js/app.js", "")),
        ("a viewer file, unchanged", 304, get("/", &format!("If-None-Match: {index_tag}\r\n"))),
        ("a viewer file, HEAD", 200, b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec()),
        ("no such file", 404, get("/missing.js", "")),
        ("a method the viewer refuses", 405, b"DELETE / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec()),
        ("health", 200, get("/api/v1/health", "")),
        ("a list", 200, get("/api/v1/executions", &auth)),
        ("a run, unchanged", 304, get(&format!("/api/v1/executions/{run}"), &format!("{auth}If-None-Match: {etag}\r\n"))),
        ("no token", 401, get("/api/v1/executions", "")),
        ("a bad parameter", 400, get("/api/v1/executions?limit=0", &auth)),
        ("an unknown run", 404, get("/api/v1/executions/01900000-0000-7000-8000-000000000000", &auth)),
        ("no route", 404, get("/api/v1/nothing", "")),
        ("a wrong method", 405, b"PUT /api/v1/executions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()),
        ("a body over the cap", 413, big.into_bytes()),
        ("an unlisted origin", 403, get("/api/v1/executions", "Origin: https://evil.example\r\n")),
        ("a preflight", 204, b"OPTIONS /api/v1/executions HTTP/1.1\r\nHost: localhost\r\nOrigin: https://tools.example.com\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n".to_vec()),
        ("a WebSocket upgrade", 101, get("/api/v1/live", &format!("{auth}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")).into_iter().collect::<Vec<u8>>()),
    ];
    let mut failures = Vec::new();
    for (what, status, request) in &requests {
        let reply = if *status == 101 {
            // The upgraded connection stays open: read the head only.
            let mut stream = TcpStream::connect(server.inner.local_addr()).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            stream.write_all(request).expect("send");
            let mut bytes = vec![0u8; 4096];
            let n = stream.read(&mut bytes).expect("the 101");
            parse(&bytes[..n])
        } else {
            raw(&server, request)
        };
        if reply.status != *status {
            failures.push(format!("{what}: expected {status}, got {}", reply.status));
        }
        let problems = missing_security_headers(&|n| reply.header(n).map(String::from));
        if !problems.is_empty() {
            failures.push(format!(
                "{what} ({}): {}",
                reply.status,
                problems.join("; ")
            ));
        }
    }
    // A rate-limited answer too.
    let limited = serve(&recorded.path, |c| c.rate_limit_per_minute = 1);
    let replies: Vec<Reply> = (0..15).map(|_| limited.get("/api/v1/executions")).collect();
    let refused = replies
        .iter()
        .find(|r| r.status == 429)
        .expect("a 429 within the burst");
    let problems = missing_security_headers(&|n| refused.header(n).map(String::from));
    if !problems.is_empty() {
        failures.push(format!("a 429: {}", problems.join("; ")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_path_reaches_outside_the_embedded_viewer() {
    let recorded = record(&[3.8]);
    let server = serve(&recorded.path, |_| {});
    let index = xray_viewer::asset("index.html").expect("index.html").bytes;
    let assets: Vec<&[u8]> = xray_viewer::assets().map(|a| a.bytes).collect();
    let mut failures = Vec::new();
    for dots in [
        "..",
        "%2e%2e",
        "%2E%2E",
        ".%2e",
        "%2e.",
        "%252e%252e",
        "%c0%ae%c0%ae",
        "..%00",
    ] {
        for sep in ["/", "%2f", "%2F", "\\", "%5c", "%252f"] {
            for target in [
                format!("/{dots}{sep}Cargo.toml"),
                format!("/{dots}{sep}{dots}{sep}{dots}{sep}etc{sep}passwd"),
                format!("/js/{dots}{sep}{dots}{sep}Cargo.toml"),
                format!("/css{sep}{dots}{sep}{dots}{sep}xray-server{sep}src{sep}main.rs"),
                format!("/api/v1/{dots}{sep}{dots}{sep}Cargo.toml"),
                format!("/{dots}{sep}xray-viewer{sep}assets{sep}index.html"),
            ] {
                let reply = raw(&server, &get(&target, ""));
                let text = String::from_utf8_lossy(&reply.body);
                let known = assets.contains(&reply.body.as_slice());
                let refused = matches!(reply.status, 400 | 404);
                if !(refused || (reply.status == 200 && known)) {
                    failures.push(format!(
                        "{target}: {} {}",
                        reply.status,
                        text.chars().take(80).collect::<String>()
                    ));
                }
                if text.contains("[workspace]")
                    || text.contains("root:")
                    || text.contains("fn main")
                {
                    failures.push(format!("{target} leaked a file"));
                }
                // A viewer route that is not a file gets the page, nothing else.
                if reply.status == 200 && !target.contains('.') && reply.body != index {
                    failures.push(format!("{target}: a page that is not the viewer"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn oversized_heads_and_bodies_are_refused_and_the_server_keeps_serving() {
    let recorded = record(&[3.8]);
    let server = serve(&recorded.path, |c| c.max_body_bytes = 64 * 1024);
    // Heads just over the cap (64 KiB) get a 431 in the error shape, with the security
    // headers; far over it hyper answers 431 itself (or closes).
    for size in [65 * 1024, 100 * 1024] {
        let long = get(
            "/api/v1/health",
            &format!("X-Pad: {}\r\n", "a".repeat(size)),
        );
        let reply = raw(&server, &long);
        assert_eq!(reply.status, 431, "a {size}-byte header");
        let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
        assert_eq!(body["error"]["code"], "header_too_large");
        assert!(missing_security_headers(&|n| reply.header(n).map(String::from)).is_empty());
    }
    let fits = get(
        "/api/v1/health",
        &format!("X-Pad: {}\r\n", "a".repeat(60 * 1024)),
    );
    assert_eq!(
        raw(&server, &fits).status,
        200,
        "a 60 KiB head is within the cap"
    );
    let huge = get(
        "/api/v1/health",
        &format!("X-Pad: {}\r\n", "a".repeat(1024 * 1024)),
    );
    let reply = raw(&server, &huge);
    assert!(
        reply.status == 431 || reply.status == 0,
        "a 1 MiB header: {}",
        reply.status
    );
    // A head of 2,000 small headers (hyper's limit is 100).
    let many: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let reply = raw(&server, &get("/api/v1/health", &many));
    assert!(
        reply.status == 431 || reply.status == 400 || reply.status == 0,
        "2,000 headers: {}",
        reply.status
    );
    // A body declared far beyond the cap is refused before it is sent.
    let mut stream = TcpStream::connect(server.inner.local_addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream
        .write_all(b"POST /api/v1/ingest HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n")
        .expect("send the head");
    let mut bytes = vec![0u8; 4096];
    let n = stream.read(&mut bytes).expect("an answer without the body");
    let reply = parse(&bytes[..n]);
    assert_eq!(
        reply.status,
        413,
        "{}",
        String::from_utf8_lossy(&bytes[..n])
    );
    // A chunked body that goes past the cap.
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
    let request = format!(
        "POST /api/v1/ingest HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(6)
    );
    assert_eq!(raw(&server, request.as_bytes()).status, 413);
    assert_eq!(server.get("/api/v1/health").status, 200, "still serving");
}

#[test]
fn a_slow_loris_is_cut_off_while_others_are_served() {
    let recorded = record(&[3.8]);
    let timeout = Duration::from_secs(1);
    let server = serve(&recorded.path, |c| c.header_read_timeout = timeout);
    // One client sends its head a byte every 100 ms, another opens and sends nothing.
    let mut loris = TcpStream::connect(server.inner.local_addr()).expect("connect");
    let mut idle = TcpStream::connect(server.inner.local_addr()).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    loris
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n")
        .expect("start");
    let started = Instant::now();
    let mut served = 0;
    let cut_after = loop {
        // Others are served meanwhile.
        assert_eq!(server.get("/api/v1/health").status, 200);
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
        if loris
            .write_all(b"X-Slow: 1\r\n")
            .and_then(|()| loris.flush())
            .is_err()
        {
            break started.elapsed();
        }
        // Well under hyper's own default (30 s), so this fails if the setting is lost.
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the slow client is still connected after 15 s"
        );
    };
    // The idle client was cut off too: its read ends (0 bytes, a reset, or a 408).
    let mut buf = [0u8; 1024];
    let idle_end = match idle.read(&mut buf) {
        Ok(0) | Err(_) => "closed".to_owned(),
        Ok(n) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
    };
    assert!(
        idle_end == "closed" || idle_end.contains(" 408 "),
        "the idle connection got {idle_end:?}"
    );
    eprintln!(
        "slow loris: cut off {:.1} s after it started (header read timeout {} s); {served} requests served meanwhile",
        cut_after.as_secs_f64(),
        timeout.as_secs()
    );
}

#[test]
fn cors_refuses_every_origin_that_is_not_listed_exactly() {
    let recorded = record(&[3.8]);
    let allowed = "https://tools.example.com";
    let server = serve(&recorded.path, |c| c.cors_origins = vec![allowed.into()]);
    for origin in [
        "https://evil.example",
        "https://tools.example.com.evil.example",
        "https://evil-tools.example.com",
        "https://tools.example.co",
        "http://tools.example.com",
        "https://tools.example.com:8443",
        "HTTPS://TOOLS.EXAMPLE.COM",
        "null",
        "",
        "https://tools.example.com/",
    ] {
        for method in ["OPTIONS", "GET"] {
            let extra = format!(
                "Origin: {origin}\r\nAccess-Control-Request-Method: DELETE\r\nAccess-Control-Request-Headers: authorization\r\n"
            );
            let request = format!(
                "{method} /api/v1/executions HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"
            );
            let reply = raw(&server, request.as_bytes());
            assert_eq!(reply.status, 403, "{method} from {origin:?}");
            for h in [
                "access-control-allow-origin",
                "access-control-allow-methods",
                "access-control-allow-headers",
            ] {
                assert!(reply.header(h).is_none(), "{method} from {origin:?}: {h}");
            }
        }
    }
    let request = format!(
        "OPTIONS /api/v1/executions HTTP/1.1\r\nHost: localhost\r\nOrigin: {allowed}\r\nAccess-Control-Request-Method: DELETE\r\nConnection: close\r\n\r\n"
    );
    let reply = raw(&server, request.as_bytes());
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some(allowed));
}

#[test]
fn the_viewer_is_served_with_a_csp_it_passes_without_inline_script() {
    let recorded = record(&[3.8]);
    let server = serve(&recorded.path, |_| {});
    let page = server.get("/");
    let csp = page
        .header("content-security-policy")
        .expect("a CSP")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = page.body.to_ascii_lowercase();
    // Every script is a same-origin file: no inline code, no handler attributes, no javascript:.
    for tag in html.split("<script").skip(1) {
        let (attributes, rest) = tag.split_once('>').expect("a closed tag");
        assert!(
            attributes.contains("src=\"/"),
            "a script without a same-origin src: {attributes}"
        );
        assert!(
            rest.trim_start().starts_with("</script>"),
            "inline script: {rest}"
        );
    }
    assert!(!html.contains("<style"), "an inline style element");
    assert!(!html.contains(" style="), "an inline style attribute");
    assert!(!html.contains("javascript:"), "a javascript: URL");
    for word in html.split(|c: char| c.is_whitespace() || c == '<') {
        let handler = word.starts_with("on")
            && word.contains('=')
            && word[2..]
                .split('=')
                .next()
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_alphabetic()));
        assert!(!handler, "an inline event handler: {word}");
    }
    // What the page loads is served from this origin with the same policy; no script needs eval.
    let mut loaded = 0;
    for attr in ["src=\"", "href=\""] {
        for piece in page.body.split(attr).skip(1) {
            let url = piece.split('"').next().unwrap_or("");
            if !url.starts_with('/') || !url.contains('.') {
                continue;
            }
            let reply = server.get(url);
            assert_eq!(reply.status, 200, "{url}");
            assert_eq!(
                reply.header("content-security-policy"),
                Some(csp.as_str()),
                "{url}"
            );
            loaded += 1;
        }
    }
    assert!(
        loaded >= 3,
        "the page loads its script, style and icon: {loaded}"
    );
    for asset in xray_viewer::assets().filter(|a| a.path.ends_with(".js")) {
        let js = String::from_utf8_lossy(asset.bytes);
        for banned in ["eval(", "new Function(", "setTimeout(\"", "setInterval(\""] {
            assert!(
                !js.contains(banned),
                "{} uses {banned}, which the CSP blocks",
                asset.path
            );
        }
    }
}
