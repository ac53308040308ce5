//! The middleware, each against a real server: rate limit, CORS, security headers, token auth,
//! ETag/304, the embedded viewer's files.

mod support;

use support::*;

#[test]
fn the_rate_limit_answers_429_with_retry_after_and_counts_down() {
    let recorded = record(&[3.8]);
    // 60 per minute with the minimum burst of 10.
    let server = serve(&recorded.path, |c| c.rate_limit_per_minute = 60);
    let first = server.get("/api/v1/executions");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ratelimit-limit"), Some("60"));
    let remaining: u32 = first
        .header("x-ratelimit-remaining")
        .expect("remaining")
        .parse()
        .expect("a number");
    let mut last_remaining = remaining;
    let mut refused = None;
    for _ in 0..20 {
        let reply = server.get("/api/v1/executions");
        if reply.status == 429 {
            refused = Some(reply);
            break;
        }
        let now: u32 = reply
            .header("x-ratelimit-remaining")
            .expect("remaining")
            .parse()
            .expect("a number");
        assert!(
            now < last_remaining,
            "the bucket empties: {now} after {last_remaining}"
        );
        last_remaining = now;
    }
    let refused = refused.expect("refused within the burst");
    assert_eq!(refused.json()["error"]["code"], "rate_limited");
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(
        (1..=2).contains(&retry),
        "one request per second refills: {retry}"
    );
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert!(refused.header("content-security-policy").is_some());
    // The viewer's files are not counted.
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn cors_allows_configured_origins_only() {
    let recorded = record(&[3.8]);
    let allowed = "https://tools.example.com";
    let server = serve(&recorded.path, |c| c.cors_origins = vec![allowed.into()]);
    let preflight = server.call(
        "OPTIONS",
        "/api/v1/executions",
        &[
            ("Origin", allowed),
            ("Access-Control-Request-Method", "PATCH"),
        ],
        None,
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(allowed)
    );
    assert!(preflight
        .header("access-control-allow-methods")
        .expect("methods")
        .contains("PATCH"));
    let get = server.call("GET", "/api/v1/executions", &[("Origin", allowed)], None);
    assert_eq!(get.status, 200);
    assert_eq!(get.header("access-control-allow-origin"), Some(allowed));
    assert_eq!(get.header("vary"), Some("Origin"));

    let evil = "https://evil.example";
    let preflight = server.call(
        "OPTIONS",
        "/api/v1/executions",
        &[
            ("Origin", evil),
            ("Access-Control-Request-Method", "DELETE"),
        ],
        None,
    );
    assert_eq!(preflight.status, 403);
    assert!(preflight.header("access-control-allow-origin").is_none());
    let get = server.call("GET", "/api/v1/executions", &[("Origin", evil)], None);
    assert_eq!(get.status, 403);
    assert_eq!(get.json()["error"]["code"], "forbidden_origin");
    let ids = execution_ids(&server);
    let delete = server.call(
        "DELETE",
        "/api/v1/executions",
        &[("Origin", evil)],
        Some(&format!(r#"{{"ids": ["{}"]}}"#, ids[0])),
    );
    assert_eq!(delete.status, 403);
    assert_eq!(execution_ids(&server).len(), 1, "nothing was deleted");

    // The embedded viewer is same-origin: its requests pass without any configuration.
    let host = server.base.trim_start_matches("http://").to_owned();
    let own = server.call(
        "PATCH",
        &format!("/api/v1/executions/{}", ids[0]),
        &[("Origin", &server.base), ("Host", &host)],
        Some(r#"{"notes": "from the viewer"}"#),
    );
    assert_eq!(own.status, 200, "{}", own.body);
}

#[test]
fn security_headers_are_on_every_response() {
    let recorded = record(&[3.8]);
    let server = serve(&recorded.path, |_| {});
    for path in [
        "/",
        "/index.html",
        "/runs/whatever",
        "/api/v1/executions",
        "/api/v1/nothing",
        "/api/v1/executions?limit=0",
        "/missing.js",
    ] {
        let reply = server.get(path);
        let csp = reply
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            reply.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
    }
}

#[test]
fn a_token_guards_every_route_but_health_and_the_viewer() {
    let recorded = record(&[3.8]);
    let server = serve(&recorded.path, |c| c.token = Some("tok".into()));
    for route in xray_server::routes::ROUTES {
        let path = route
            .pattern
            .replace("{id}", "01900000-0000-7000-8000-000000000000")
            .replace("{candidate_id}", "B00001");
        let body = route.has_body.then_some("{}");
        let reply = server.call(route.method.as_str(), &path, &[], body);
        if route.needs_token {
            assert_eq!(reply.status, 401, "{} {path}: {}", route.method, reply.body);
            assert_eq!(reply.error_field().as_deref(), Some("Authorization"));
        } else {
            assert_eq!(reply.status, 200, "{} {path}", route.method);
        }
    }
    assert_eq!(
        server.get("/").status,
        200,
        "the viewer loads and asks for the token"
    );
    let ok = server.call(
        "GET",
        "/api/v1/executions",
        &[("Authorization", "Bearer tok")],
        None,
    );
    assert_eq!(ok.status, 200);
}

#[test]
fn finished_runs_and_steps_carry_etags_and_answer_304() {
    let recorded = record(&[3.8]);
    let server = serve(&recorded.path, |_| {});
    let id = &execution_ids(&server)[0];
    for path in [
        format!("/api/v1/executions/{id}"),
        format!("/api/v1/steps/{}", step_id(&server, id, "apply_filters")),
    ] {
        let first = server.get(&path);
        let etag = first.header("etag").expect("an ETag").to_owned();
        assert!(etag.starts_with('"'), "strong: {etag}");
        assert_eq!(first.header("cache-control"), Some("no-cache"));
        let again = server.call("GET", &path, &[("If-None-Match", &etag)], None);
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
        let other = server.call("GET", &path, &[("If-None-Match", "\"stale\"")], None);
        assert_eq!(other.status, 200);
    }
    // An edit changes the run's ETag.
    let path = format!("/api/v1/executions/{id}");
    let etag = server.get(&path).header("etag").expect("etag").to_owned();
    server.call("PATCH", &path, &[], Some(r#"{"tags": ["edited"]}"#));
    let after = server.call("GET", &path, &[("If-None-Match", &etag)], None);
    assert_eq!(after.status, 200, "edited runs are not stale in caches");
    // Lists are served fresh.
    let list = server.get("/api/v1/executions");
    assert_eq!(list.header("cache-control"), Some("no-store"));
    assert!(list.header("etag").is_none());
}

#[test]
fn the_viewer_is_served_and_paths_cannot_walk_out() {
    let recorded = record(&[3.8]);
    let server = serve(&recorded.path, |_| {});
    let index = server.get("/");
    assert_eq!(index.status, 200);
    assert!(index
        .header("content-type")
        .expect("type")
        .starts_with("text/html"));
    assert!(index.body.contains("<title>X-Ray"));
    let deep = server.get("/runs/0190/steps/abc");
    assert_eq!(deep.body, index.body, "deep links open the viewer");
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2e%2e%2fCargo.toml",
        "/..%2f..%2fetc%2fpasswd",
        "/assets/../../Cargo.toml",
        "/index.html%00.js",
        "/Cargo.toml",
    ] {
        let (status, body) = raw_get(&server, path);
        assert!(
            status == 404 || status == 400 || body.contains("<title>X-Ray"),
            "{path}: {status} {}",
            body.chars().take(100).collect::<String>()
        );
        assert!(!body.contains("[workspace]"), "{path} leaked a file");
        assert!(!body.contains("root:"), "{path} leaked a file");
    }
    let post = server.call("POST", "/", &[], Some("{}"));
    assert_eq!(post.status, 405);
}
