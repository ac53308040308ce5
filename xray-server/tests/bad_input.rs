//! Bad input to every parameter: each gets the right 4xx naming what was wrong, none is a 500,
//! and the data is the same afterwards.

mod support;

use support::*;

const TOKEN: &str = "s3cret-token";

struct Case {
    method: &'static str,
    path: String,
    body: Option<String>,
    status: u16,
    /// The `field` the error must name (`None`: the error names none).
    field: Option<&'static str>,
}

fn case(
    method: &'static str,
    path: impl Into<String>,
    status: u16,
    field: Option<&'static str>,
) -> Case {
    Case {
        method,
        path: path.into(),
        body: None,
        status,
        field,
    }
}

fn with_body(
    method: &'static str,
    path: impl Into<String>,
    body: impl Into<String>,
    status: u16,
    field: Option<&'static str>,
) -> Case {
    Case {
        method,
        path: path.into(),
        body: Some(body.into()),
        status,
        field,
    }
}

/// Everything a client can read, to compare before and after.
fn snapshot(server: &Server, auth: &[(&str, &str)]) -> Vec<String> {
    let list = server.call("GET", "/api/v1/executions?limit=1000", auth, None);
    let mut out = vec![list.body.clone()];
    for run in list.json()["items"].as_array().expect("items") {
        let id = run["id"].as_str().expect("id");
        out.push(
            server
                .call(
                    "GET",
                    &format!("/api/v1/executions/{id}/export"),
                    auth,
                    None,
                )
                .body,
        );
    }
    out
}

#[test]
fn bad_input_gets_a_4xx_naming_the_parameter_and_changes_nothing() {
    let recorded = record(&[3.5, 3.8]);
    let server = serve(&recorded.path, |c| {
        c.token = Some(TOKEN.into());
        c.max_body_bytes = 64 * 1024;
        c.rate_limit_per_minute = 0;
    });
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let before = snapshot(&server, &auth);
    let ids: Vec<String> = serde_json::from_str::<serde_json::Value>(&before[0]).expect("json")
        ["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    let run = &ids[0];
    let run_detail = server
        .call("GET", &format!("/api/v1/executions/{run}"), &auth, None)
        .json();
    let step = run_detail["steps"][2]["id"]
        .as_str()
        .expect("step")
        .to_owned();
    let rank = run_detail["steps"][3]["id"]
        .as_str()
        .expect("the rank step")
        .to_owned();
    let other_run = &ids[1];
    let unknown = "01900000-0000-7000-8000-000000000000";
    let steps_cursor = {
        let page = server
            .call("GET", "/api/v1/steps?limit=1", &auth, None)
            .json();
        page["next_cursor"].as_str().expect("a cursor").to_owned()
    };
    let huge = "x".repeat(70 * 1024);
    let e = "/api/v1/executions";

    let cases = vec![
        // The runs list: every parameter.
        case("GET", format!("{e}?limit=0"), 400, Some("limit")),
        case("GET", format!("{e}?limit=-1"), 400, Some("limit")),
        case("GET", format!("{e}?limit=1001"), 400, Some("limit")),
        case("GET", format!("{e}?limit=ten"), 400, Some("limit")),
        case(
            "GET",
            format!("{e}?limit=99999999999999999999999"),
            400,
            Some("limit"),
        ),
        case("GET", format!("{e}?cursor=zz"), 400, Some("cursor")),
        case("GET", format!("{e}?cursor=6162"), 400, Some("cursor")),
        case(
            "GET",
            format!("{e}?cursor={steps_cursor}"),
            400,
            Some("cursor"),
        ),
        case("GET", format!("{e}?status=done"), 400, Some("status")),
        case("GET", format!("{e}?since=yesterday"), 400, Some("since")),
        case("GET", format!("{e}?until=1e99"), 400, Some("until")),
        case("GET", format!("{e}?min_steps=-3"), 400, Some("min_steps")),
        case("GET", format!("{e}?max_steps=many"), 400, Some("max_steps")),
        case(
            "GET",
            format!("{e}?has_error=maybe"),
            400,
            Some("has_error"),
        ),
        case("GET", format!("{e}?q={}", "a".repeat(201)), 400, Some("q")),
        case("GET", format!("{e}?limt=5"), 400, Some("limt")),
        case("GET", format!("{e}?limit=5&limit=6"), 400, Some("limit")),
        // SQL-looking text is text.
        case("GET", format!("{e}?q=%27%20OR%201%3D1%20--"), 200, None),
        case(
            "GET",
            format!("{e}?name=x%27%3B%20DROP%20TABLE%20executions%3B--"),
            200,
            None,
        ),
        case(
            "GET",
            format!("{e}?tag=%27)%20OR%20(%271%27%3D%271"),
            200,
            None,
        ),
        // One run.
        case("GET", format!("{e}/not-a-uuid"), 404, Some("execution")),
        case("GET", format!("{e}/{unknown}"), 404, Some("execution")),
        case("GET", format!("{e}/{run}?verbose=1"), 400, Some("verbose")),
        case(
            "GET",
            format!("{e}/{run}/export?format=xml"),
            400,
            Some("format"),
        ),
        case(
            "GET",
            format!("{e}/{unknown}/export"),
            404,
            Some("execution"),
        ),
        case(
            "GET",
            format!("{e}/..%2F..%2Fetc%2Fpasswd"),
            404,
            Some("execution"),
        ),
        case("GET", "/api/v1/executions/%2e%2e/x", 404, None),
        // Steps.
        case(
            "GET",
            "/api/v1/steps?min_elimination=1.5",
            400,
            Some("min_elimination"),
        ),
        case(
            "GET",
            "/api/v1/steps?min_elimination=-0.1",
            400,
            Some("min_elimination"),
        ),
        case(
            "GET",
            "/api/v1/steps?min_elimination=most",
            400,
            Some("min_elimination"),
        ),
        case("GET", "/api/v1/steps?status=fine", 400, Some("status")),
        case("GET", "/api/v1/steps?since=monday", 400, Some("since")),
        case("GET", "/api/v1/steps?limit=100000", 400, Some("limit")),
        case(
            "GET",
            format!("/api/v1/steps?cursor={}", "0".repeat(600)),
            400,
            Some("cursor"),
        ),
        case("GET", "/api/v1/steps/123", 404, Some("step")),
        case("GET", format!("/api/v1/steps/{unknown}"), 404, Some("step")),
        case(
            "GET",
            format!("/api/v1/steps/{step}/evaluations?passed=yes"),
            400,
            Some("passed"),
        ),
        case(
            "GET",
            format!("/api/v1/steps/{step}/evaluations?sort=random"),
            400,
            Some("sort"),
        ),
        case(
            "GET",
            format!("/api/v1/steps/{step}/evaluations?sort=metric"),
            400,
            Some("metric"),
        ),
        case(
            "GET",
            format!("/api/v1/steps/{step}/evaluations?metric=confidence"),
            400,
            Some("metric"),
        ),
        // A metric no evaluation has: a misspelling must not read as "sorted".
        case(
            "GET",
            format!("/api/v1/steps/{step}/evaluations?sort=metric&metric=confidence"),
            400,
            Some("metric"),
        ),
        case(
            "GET",
            format!("/api/v1/steps/{rank}/evaluations?sort=metric_asc&metric=pricee"),
            400,
            Some("metric"),
        ),
        // The other step of a comparison: a run's id is not one.
        case(
            "GET",
            format!("/api/v1/steps/{step}/verdict-changes?other={other_run}"),
            400,
            Some("other"),
        ),
        case(
            "GET",
            format!("/api/v1/steps/{step}/only-in?other={unknown}"),
            404,
            Some("other"),
        ),
        case(
            "GET",
            format!("/api/v1/steps/{step}/evaluations?cursor=not-hex"),
            400,
            Some("cursor"),
        ),
        case(
            "GET",
            format!("/api/v1/steps/{step}/evaluations?limit=0"),
            400,
            Some("limit"),
        ),
        case(
            "GET",
            format!("/api/v1/steps/{unknown}/evaluations"),
            404,
            Some("step"),
        ),
        // SQL in a check name is a name like any other: the step made no such check.
        case(
            "GET",
            format!("/api/v1/steps/{step}/evaluations?check=%27%3B--"),
            400,
            Some("check"),
        ),
        // Candidates, stats, compare.
        case(
            "GET",
            "/api/v1/candidates/B00001?limit=0",
            400,
            Some("limit"),
        ),
        case(
            "GET",
            format!("/api/v1/candidates/{}", "c".repeat(501)),
            400,
            Some("candidate_id"),
        ),
        case("GET", "/api/v1/stats?until=soon", 400, Some("until")),
        case("GET", "/api/v1/compare", 400, Some("a")),
        case("GET", format!("/api/v1/compare?a={run}"), 400, Some("b")),
        case("GET", "/api/v1/compare?a=1&b=2", 400, Some("a")),
        case(
            "GET",
            format!("/api/v1/compare?a={unknown}&b={run}"),
            404,
            Some("a"),
        ),
        // Live.
        case("GET", "/api/v1/live", 400, Some("Upgrade")),
        case("GET", "/api/v1/live?since=-1", 400, Some("since")),
        case("GET", "/api/v1/live?execution=nope", 400, Some("execution")),
        // Writes with bad bodies.
        with_body("PATCH", format!("{e}/{run}"), "{", 400, None),
        with_body(
            "PATCH",
            format!("{e}/{run}"),
            r#"{"tags": "one"}"#,
            400,
            Some("tags"),
        ),
        with_body(
            "PATCH",
            format!("{e}/{run}"),
            r#"{"colour": "red"}"#,
            400,
            None,
        ),
        with_body(
            "PATCH",
            format!("{e}/{run}"),
            format!(r#"{{"tags": [{}]}}"#, vec!["\"t\""; 51].join(",")),
            400,
            Some("tags"),
        ),
        with_body(
            "PATCH",
            format!("{e}/{run}"),
            r#"{"tags": [""]}"#,
            400,
            Some("tags[0]"),
        ),
        with_body(
            "PATCH",
            format!("{e}/{unknown}"),
            r#"{"notes": "x"}"#,
            404,
            Some("execution"),
        ),
        with_body(
            "PATCH",
            format!("{e}/{run}"),
            format!(r#"{{"notes": "{huge}"}}"#),
            413,
            None,
        ),
        with_body("DELETE", e, r#"{"ids": []}"#, 400, Some("ids")),
        with_body("DELETE", e, r#"{"ids": ["x"]}"#, 400, Some("ids[0]")),
        with_body("DELETE", e, "", 400, None),
        with_body("POST", "/api/v1/ingest", "not json", 400, None),
        with_body(
            "POST",
            "/api/v1/ingest",
            r#"{"xray_export": 2, "executions": []}"#,
            400,
            Some("xray_export"),
        ),
        with_body(
            "POST",
            "/api/v1/ingest",
            r#"{"xray_export": 1, "executions": [{"id": "x"}]}"#,
            400,
            Some("executions[0].id"),
        ),
        with_body(
            "POST",
            "/api/v1/ingest",
            format!(
                r#"{{"xray_export": 1, "executions": [{{"id": "{unknown}", "status": "ok", "started_at": 1}}]}}"#
            ),
            400,
            Some("executions[0]"),
        ),
        with_body(
            "POST",
            "/api/v1/ingest",
            format!(
                r#"{{"xray_export": 1, "executions": [{{"id": "{unknown}", "name": "n", "status": "ok", "started_at": 1}}]}}"#
            ),
            400,
            Some("executions[0].completed_at"),
        ),
        with_body(
            "POST",
            "/api/v1/ingest",
            format!(r#"{{"pad": "{huge}"}}"#),
            413,
            None,
        ),
        // Routes and methods.
        case("PUT", e, 405, None),
        case("POST", format!("{e}/{run}"), 405, None),
        case("GET", "/api/v1/nothing", 404, None),
        case("GET", "/api/v2/executions", 404, None),
    ];

    let mut failures = Vec::new();
    for c in &cases {
        let reply = server.call(c.method, &c.path, &auth, c.body.as_deref());
        let field = if reply.status == 200 {
            None
        } else {
            reply.error_field()
        };
        let short: String = c.path.chars().take(90).collect();
        if reply.status >= 500 {
            failures.push(format!(
                "{} {short}: a {} ({})",
                c.method, reply.status, reply.body
            ));
        } else if reply.status != c.status || (c.field.is_some() && field.as_deref() != c.field) {
            failures.push(format!(
                "{} {short}: expected {} naming {:?}, got {} naming {field:?}: {}",
                c.method,
                c.status,
                c.field,
                reply.status,
                reply.body.chars().take(200).collect::<String>()
            ));
        }
        if reply.status >= 400 {
            let error = &reply.json()["error"];
            if !error["code"].is_string() || !error["message"].is_string() {
                failures.push(format!(
                    "{} {short}: not the error shape: {}",
                    c.method, reply.body
                ));
            }
        }
    }

    // Those two errors say what to give instead.
    let message = |path: String| {
        let reply = server.call("GET", &path, &auth, None);
        reply.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let said = message(format!(
        "/api/v1/steps/{rank}/evaluations?sort=metric&metric=pricee"
    ));
    assert!(said.ends_with("its metrics: price"), "{said}");
    let same_step = server
        .call(
            "GET",
            &format!("/api/v1/executions/{other_run}"),
            &auth,
            None,
        )
        .json()["steps"][2]["id"]
        .as_str()
        .expect("the other run's filter step")
        .to_owned();
    let said = message(format!(
        "/api/v1/steps/{step}/verdict-changes?other={other_run}"
    ));
    assert!(
        said.ends_with(&format!(
            "is a run, not a step: its apply_filters step is {same_step}"
        )),
        "{said}"
    );

    // The token: missing, wrong, or almost right.
    for header in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-toke"),
        Some("s3cret-token"),
    ] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("Authorization", h)).into_iter().collect();
        let reply = server.call("GET", e, &headers, None);
        if reply.status != 401 || reply.error_field().as_deref() != Some("Authorization") {
            failures.push(format!(
                "token {header:?}: got {} {}",
                reply.status, reply.body
            ));
        }
        let reply = server.call(
            "DELETE",
            e,
            &headers,
            Some(&format!(r#"{{"ids": ["{run}"]}}"#)),
        );
        if reply.status != 401 {
            failures.push(format!(
                "delete with token {header:?}: got {}",
                reply.status
            ));
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len() + 8,
        failures.join("\n")
    );
    assert_eq!(snapshot(&server, &auth), before, "the data is unchanged");
}
