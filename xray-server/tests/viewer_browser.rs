//! The viewer in a real headless Chromium, against a real `xray-server` on an ephemeral port,
//! over databases the real layer wrote. Each test asserts on what the page shows.
//!
//! Needs Debian's `chromium` (`apt-get install -y chromium chromium-driver`; `.ci/run` installs
//! it): without it the tests fail and say so. Screenshots (1280×800) go to `<repo>/screenshots/`.

mod viewer_support;

use std::sync::mpsc;
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;
use uuid::Uuid;
use viewer_support::browser::{js_str, Page};
use viewer_support::fixture::{self, expected_rating_failures, main};
use viewer_support::verdicts::{judge_all, verdict_run};
use xray::store::Store;

/// The id of the step called `name` in run `run`.
fn step_id(store: &dyn Store, run: Uuid, name: &str) -> Uuid {
    store
        .execution(run)
        .expect("the run reads")
        .expect("the run exists")
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("run {run} has a step {name}"))
        .id
}

/// A JSON list of strings, as the page returned it (other values left out).
fn strings(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .map(|items| items.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default()
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const RUN_ROWS: &str = "document.querySelectorAll('table.runs tbody tr')";

#[test]
fn runs_list_filters_and_opens_a_run() {
    let m = main();
    let url = m.server.url();
    let page = Page::launch();
    page.goto(&format!("{url}/"));
    page.wait(&format!("{RUN_ROWS}.length === 4"), "the four runs");
    let names = page.texts("table.runs tbody tr .run-link");
    assert_eq!(
        names,
        [
            "bulk_scoring",
            "competitor_selection",
            "competitor_selection",
            "competitor_selection"
        ],
        "newest first"
    );
    let failing_row = page.text(&format!("tr[data-id='{}']", m.failing));
    assert!(failing_row.contains("error"), "status shown: {failing_row}");
    // A failed run returned nothing: its funnel does not end in a count as if it had.
    let funnel = |run: Uuid| page.text(&format!("tr[data-id='{run}'] .mini-funnel"));
    assert!(
        funnel(m.failing).ends_with("→ failed"),
        "{}",
        funnel(m.failing)
    );
    assert!(!funnel(m.normal).contains("failed"), "{}", funnel(m.normal));
    let bulk_row = page.text(&format!("tr[data-id='{}']", m.bulk));
    assert!(bulk_row.contains("3,000 → "), "mini funnel: {bulk_row}");
    // The three competitor-selection runs share a name; each says what it was given, what
    // differs between them first (the seller is the same in all three).
    let given = |run: Uuid| page.text(&format!("tr[data-id='{run}'] .input-preview"));
    let title = fixture::seller().title;
    // A value the other runs do not have comes first (the failing run's judge_fails).
    for (run, differs) in [
        (m.normal, "creative: false · judge_fails: false · "),
        (m.creative, "creative: true · judge_fails: false · "),
        (m.failing, "judge_fails: true · creative: false · "),
    ] {
        let preview = given(run);
        assert!(
            preview.starts_with(differs) && preview.contains(&format!("title: {title}")),
            "{differs:?} first, then the seller: {preview}"
        );
    }
    // And what each returned, below what it was given: the winner's id. The failing run
    // returned nothing, and says nothing.
    for run in [m.normal, m.creative] {
        let output = m
            .store
            .execution(run)
            .expect("the store reads")
            .and_then(|r| r.output)
            .expect("the run returned its winner");
        let winner: String = serde_json::from_str(output.as_str()).expect("the winner's id");
        assert_eq!(
            page.text(&format!("tr[data-id='{run}'] .output-preview")),
            format!("→ {winner}")
        );
        // The tooltips name what they list, every field on its own line.
        let tip = |class: &str| {
            page.eval(&format!(
                "document.querySelector(\"tr[data-id='{run}'] .{class}\").title"
            ))
        };
        assert_eq!(tip("output-preview"), format!("Output:\n{winner}"));
        let input = tip("input-preview");
        assert!(
            input
                .as_str()
                .is_some_and(|t| t.starts_with("Input:\n")
                    && t.contains(&format!("\nseller.title: {title}"))),
            "{input}"
        );
    }
    assert_eq!(
        page.eval(&format!(
            "document.querySelectorAll(\"tr[data-id='{}'] .output-preview\").length",
            m.failing
        )),
        0
    );
    // Nothing was lost recording these runs: no warning, once the server has said so.
    page.wait(
        "document.querySelector('.recorder-loss').dataset.checked === 'true'",
        "the recorder counts",
    );
    assert_eq!(page.text(".recorder-loss"), "");
    page.screenshot("runs");

    // Status filter: only the failing run, and the URL says so.
    page.set_value("select[name=status]", "error");
    page.wait(
        &format!(
            "{RUN_ROWS}.length === 1 && {RUN_ROWS}[0].dataset.id === {}",
            js_str(&m.failing.to_string())
        ),
        "only the failing run",
    );
    assert!(page
        .eval("location.search")
        .as_str()
        .unwrap_or("")
        .contains("status=error"));

    // Tag filter (typed), then the deep link reopens the same list.
    page.set_value("select[name=status]", "");
    page.set_value("input[name=tag]", "creative");
    let creative = js_str(&m.creative.to_string());
    page.wait(
        &format!("{RUN_ROWS}.length === 1 && {RUN_ROWS}[0].dataset.id === {creative}"),
        "only the run tagged creative",
    );
    page.goto(&format!("{url}/?tag=creative"));
    page.wait(
        &format!("{RUN_ROWS}.length === 1 && {RUN_ROWS}[0].dataset.id === {creative}"),
        "the deep link filters again",
    );
    assert_eq!(
        page.eval("document.querySelector('input[name=tag]').value"),
        "creative"
    );

    // Free text: a step name finds every competitor-selection run.
    page.goto(&format!("{url}/"));
    page.set_value("input[name=q]", "relevance_check");
    page.wait(
        &format!("{RUN_ROWS}.length === 3"),
        "three runs with that step",
    );

    // … and what a run selected (its output) finds the run.
    let selected = m
        .store
        .execution(m.creative)
        .expect("query")
        .expect("the creative run")
        .output
        .and_then(|o| o.to_value().as_str().map(str::to_owned))
        .expect("the creative run selected a candidate");
    page.set_value("input[name=q]", &selected.to_lowercase());
    page.wait(
        &format!(
            "{RUN_ROWS}.length >= 1 && [...{RUN_ROWS}].some((r) => r.dataset.id === {creative})"
        ),
        "the run that selected it",
    );
    page.set_value("input[name=q]", "relevance_check");
    page.wait(
        &format!("{RUN_ROWS}.length === 3"),
        "three runs with that step, again",
    );

    // Open the creative run: its steps, and the funnel's loss attributed to checks.
    page.click(&format!("tr[data-id='{}'] a.run-link", m.creative));
    page.wait(
        &format!("location.pathname === '/runs/{}'", m.creative),
        "the run's URL",
    );
    page.wait(
        "document.querySelectorAll('.waterfall .wf-row[data-step]').length === 5",
        "five steps in the waterfall",
    );
    assert_eq!(
        page.texts(".waterfall .wf-link"),
        [
            "keyword_generation",
            "candidate_search",
            "apply_filters",
            "relevance_check",
            "rank_and_select"
        ]
    );
    // A name its badges may cut short is whole on hover.
    assert_eq!(
        page.eval("document.querySelectorAll('.waterfall .wf-link')[3].title"),
        "relevance_check (llm)"
    );
    let filter_step = step_id(m.store.as_ref(), m.creative, "apply_filters");
    let funnel = page.text(&format!(".funnel-row[data-step='{filter_step}']"));
    let first_failed_rating = fixture::search_hits(&fixture::keywords(true), &fixture::catalog())
        .iter()
        .filter(|p| (20.0..=80.0).contains(&p.price) && p.rating < fixture::MIN_RATING)
        .count();
    assert!(
        funnel.contains(&format!("rating: {}", thousands(first_failed_rating))),
        "the funnel attributes the loss to rating: {funnel}"
    );
    // Its reasons count every candidate under the minimum, also those price rejected first.
    let failed_rating = fixture::search_hits(&fixture::keywords(true), &fixture::catalog())
        .iter()
        .filter(|p| p.rating < fixture::MIN_RATING)
        .count();
    assert!(failed_rating > first_failed_rating);
    assert!(
        funnel.contains(&format!(
            "rating: {} first · {} failed",
            thousands(first_failed_rating),
            thousands(failed_rating)
        )) && funnel.contains(&format!("< 3.8 minimum ×{}", thousands(failed_rating))),
        "how many failed rating in all, and the one rule they failed: {funnel}"
    );
    // Each funnel row names the checks that rejected nobody, as the store's counts say.
    let run = m
        .store
        .execution(m.creative)
        .expect("the run")
        .expect("stored");
    let mut named = 0;
    for step in &run.steps {
        let checks: Vec<_> = step.summary.iter().flat_map(|s| &s.checks).collect();
        // Named beside checks that rejected some; a step whose checks rejected none (a
        // search saying which keyword found each) names none.
        let none: Vec<&str> = if checks.iter().any(|c| c.failed > 0) {
            checks
                .iter()
                .filter(|c| c.failed == 0)
                .map(|c| c.name.as_str())
                .collect()
        } else {
            Vec::new()
        };
        let shown = page.eval(&format!(
            "document.querySelector(\".funnel-row[data-step='{}'] .rejected-none\")?.innerText ?? null",
            step.id
        ));
        if none.is_empty() {
            assert!(shown.is_null(), "{}: {shown}", step.name);
        } else {
            named += 1;
            assert_eq!(
                shown,
                format!("Rejected none: {}", none.join(", ")),
                "{}",
                step.name
            );
        }
    }
    // (This fixture's filters reject with every check: see the test of `sieve` for one that
    // does not.)
    assert_eq!(named, 0);
    // A loss no check accounts for (a top N) says so, and only there.
    let mut unattributed = 0;
    for step in &run.steps {
        let lost = match (step.candidates_in, step.candidates_out) {
            (Some(i), Some(o)) => i > o,
            _ => false,
        };
        let by_check = step
            .summary
            .iter()
            .flat_map(|s| &s.checks)
            .any(|c| c.first_failed > 0);
        let expected = lost && !by_check && step.status == xray::model::Status::Ok;
        let shown = page.eval(&format!(
            "Boolean(document.querySelector(\".funnel-row[data-step='{}'] .unattributed-loss\"))",
            step.id
        ));
        assert_eq!(shown, expected, "{}", step.name);
        unattributed += usize::from(expected);
    }
    assert!(unattributed > 0, "the fixture's ranking keeps its top N");
    assert!(page.text("h1").contains("ok"));
    // What the run was given and what it decided are open (both are short), beside its notes.
    assert_eq!(
        page.eval(
            "[...document.querySelectorAll('details.collapsible')].filter((d) => d.open).map((d) => d.querySelector('h2').textContent).join()"
        ),
        "Tags and notes,Input,Output"
    );
    let tags = page.texts(".page-head .tag");
    assert_eq!(tags, ["demo", "creative"], "the run's tags");
    let notes = page.eval("document.querySelector('.annotations textarea').value");
    assert!(
        notes.as_str().unwrap_or("").contains("phone case"),
        "the run's notes: {notes}"
    );
    page.screenshot("run");

    // Tags are editable: a new tag is saved through the API and shown.
    page.set_value(".annotations input", "demo, creative, reviewed");
    page.click(".annotations button[type=submit]");
    page.wait(
        "document.querySelector('.save-status')?.innerText === 'Saved.'",
        "the tags saved",
    );
    page.wait(
        "[...document.querySelectorAll('.page-head .tag')].map((t) => t.innerText).join() === 'demo,creative,reviewed'",
        "the new tag in the header",
    );
    let stored = m
        .store
        .execution(m.creative)
        .expect("the run reads")
        .expect("the run exists")
        .execution
        .tags;
    assert_eq!(stored, ["demo", "creative", "reviewed"]);
}

/// The judge's candidates sort by the metric its rows carry (`confidence`), both ways, and the
/// address keeps the order.
#[test]
fn a_judge_steps_candidates_sort_by_confidence() {
    let m = main();
    let judge = step_id(m.store.as_ref(), m.creative, "relevance_check");
    let by = |sort| {
        m.store
            .evaluations(
                judge,
                &xray::store::EvaluationQuery {
                    sort,
                    metric: Some("confidence".into()),
                    limit: Some(1),
                    ..Default::default()
                },
            )
            .expect("the judge's rows")
            .items[0]
            .candidate_id
            .clone()
    };
    let (lowest, highest) = (
        by(xray::store::EvaluationSort::MetricAsc),
        by(xray::store::EvaluationSort::MetricDesc),
    );
    assert_ne!(lowest, highest, "the fixture's confidences differ");
    let page = Page::launch();
    page.goto(&format!("{}/steps/{judge}", m.server.url()));
    page.wait(
        "[...document.querySelectorAll('#sort option')].some((o) => o.value === 'metric_asc:confidence')",
        "the metric named by the rows, in the sort menu",
    );
    let first =
        "document.querySelector('.vt-spacer .vt-row[data-index=\"0\"] .cand-id')?.innerText";
    for (value, expected) in [
        ("metric_asc:confidence", &lowest),
        ("metric:confidence", &highest),
    ] {
        page.set_value("#sort", value);
        page.wait(
            &format!("{first} === {}", js_str(expected)),
            &format!("{expected} first, sorted by {value}"),
        );
    }
    let search = page.eval("location.search");
    assert_eq!(
        search.as_str(),
        Some("?sort=metric&metric=confidence"),
        "the address keeps the order"
    );
    // The page says what the table is sorted by, and each row shows that value first.
    let count = page.text(".count-line");
    assert!(
        count.ends_with("· sorted by confidence, highest first"),
        "{count}"
    );
    let sorted_value = page.text(".vt-spacer .vt-row[data-index='0'] .sorted-metric");
    assert!(sorted_value.starts_with("confidence "), "{sorted_value}");
    // Reloaded from the address: the same order, the menu showing it.
    page.goto(&format!(
        "{}/steps/{judge}?sort=metric_asc&metric=confidence",
        m.server.url()
    ));
    page.wait(
        &format!("{first} === {}", js_str(&lowest)),
        "the order of the address",
    );
    assert_eq!(
        page.eval("document.querySelector('#sort').value").as_str(),
        Some("metric_asc:confidence")
    );
    // The API's other spelling, and an address that names no metric (recorded order, not a
    // failed request).
    page.goto(&format!(
        "{}/steps/{judge}?sort=metric_desc&metric=confidence",
        m.server.url()
    ));
    page.wait(
        &format!("{first} === {}", js_str(&highest)),
        "highest first, from sort=metric_desc",
    );
    // A metric no row has (a misspelled address): the page says so.
    page.goto(&format!(
        "{}/steps/{judge}?sort=metric&metric=confidense",
        m.server.url()
    ));
    page.wait(
        "document.querySelector('.count-line')?.innerText.includes('no candidate here has a metric “confidense”') \
         && document.querySelector('.vt-spacer .vt-row[data-index=\"0\"] .cand-id')",
        "the note on a metric no row has, over the rows in recorded order",
    );
    // The API refused the sort (a 400 naming `metric`), the page asked again without it: that
    // one refusal is the only problem.
    page.wait_for_problems(&["HTTP 400 for", "log error: Failed to load resource"]);
    assert!(
        page.problems()
            .iter()
            .all(|p| p.contains("400") || p.contains("Failed to load resource")),
        "{:#?}",
        page.problems()
    );
    page.clear_problems();
    page.goto(&format!("{}/steps/{judge}?sort=metric", m.server.url()));
    page.wait(
        "document.querySelector('#sort')?.value === 'recorded' && document.querySelector('.vt-spacer .vt-row[data-index=\"0\"] .cand-id')",
        "recorded order",
    );
    let problems = page.problems();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn filter_step_candidates_failed_by_rating_then_a_candidates_lineage() {
    let m = main();
    let url = m.server.url();
    let page = Page::launch();
    page.goto(&format!("{url}/runs/{}", m.normal));
    // What the run was given reads without a click: the seller's fields, not "seller {7 keys}".
    let input = page.wait(
        "[...document.querySelectorAll('details.collapsible')].find((d) => d.querySelector('summary h2')?.textContent === 'Input')?.innerText",
        "the run's input",
    );
    let seller = fixture::seller().title;
    assert!(
        input.as_str().unwrap_or("").contains(&seller),
        "the seller's title in the run's input: {input}"
    );
    let filter_step = step_id(m.store.as_ref(), m.normal, "apply_filters");
    page.click(&format!(".wf-row[data-step='{filter_step}'] a.wf-link"));
    page.wait(
        &format!("location.pathname === '/steps/{filter_step}'"),
        "the step's URL",
    );
    let hits = fixture::search_hits(&fixture::keywords(false), &fixture::catalog()).len();
    page.wait(
        &format!(
            "document.querySelector('.count-line')?.innerText === '{} candidates'",
            thousands(hits)
        ),
        "every candidate of the step counted",
    );

    // Failed, on the rating check.
    page.set_value("#verdict", "failed");
    page.set_value("#check", "rating");
    let expected = expected_rating_failures(false);
    page.wait(
        &format!(
            "document.querySelector('.count-line')?.innerText === '{} candidates that failed the “rating” check'",
            thousands(expected)
        ),
        "the count of candidates that failed rating",
    );
    // The rows shown all failed rating, each with its reason (rating is the 4th column).
    let cells = page.wait(
        "(() => { const rows = [...document.querySelectorAll('.vt-spacer .vt-row[data-placeholder=\"0\"]')]; \
          return rows.length >= 10 ? rows.map((r) => r.children[3].innerText) : null; })()",
        "rows of the filtered table",
    );
    for cell in cells.as_array().expect("cells") {
        let text = cell.as_str().unwrap_or("");
        assert!(
            text.starts_with('✗') && text.contains("< 3.8 minimum"),
            "a failed rating with its reason: {text:?}"
        );
    }
    let search = page.eval("location.search");
    assert!(
        search.as_str().unwrap_or("").contains("check=rating"),
        "deep link: {search}"
    );
    // The status names the rows in view: from the first, at the top of the table.
    let status = page.text(".vt-status");
    assert!(
        status.starts_with("Rows 1–") && status.contains(&format!("of {}", thousands(expected))),
        "{status}"
    );
    page.screenshot("step");

    // The output (67 products) was cut by the recorder's cap: the page says so.
    let output = page.text("details.payload-output > summary");
    assert_eq!(output, "Output · truncated", "the output's heading");
    let note =
        page.eval("document.querySelector('details.payload-output .jt-truncated')?.textContent");
    assert!(
        note.as_str()
            .unwrap_or("")
            .contains("Truncated by the recorder's payload cap"),
        "the truncation notice: {note}"
    );

    // A row's detail, then its lineage across every run.
    page.click(".vt-spacer .vt-row[data-placeholder='0'] .vt-cell:nth-child(2)");
    page.wait(
        "document.querySelector('.candidate-detail')?.innerText.includes('minimum')",
        "the selected candidate's checks",
    );
    let candidate = page
        .eval("document.querySelector('.vt-spacer .vt-row[data-index=\"0\"] .cand-id').innerText")
        .as_str()
        .expect("a candidate id")
        .to_owned();
    page.click(".vt-spacer .vt-row[data-index='0'] .cand-id");
    page.wait(
        &format!(
            "location.pathname === '/candidates' && new URLSearchParams(location.search).get('id') === {}",
            js_str(&candidate)
        ),
        "the lineage URL",
    );
    let blocks = page.wait(
        "(() => { const b = [...document.querySelectorAll('.lineage-run')]; return b.length === 3 ? b.map((x) => x.innerText) : null; })()",
        "the candidate's three competitor-selection runs",
    );
    for block in blocks.as_array().expect("blocks") {
        let text = block.as_str().unwrap_or("");
        assert!(
            text.contains("Rejected by apply_filters") && text.contains("rating: "),
            "why it was rejected, in every run: {text}"
        );
    }
    // Each run says what it was given: runs of one pipeline are told apart without opening them.
    let given = |run: Uuid| {
        page.eval(&format!(
            "[...document.querySelectorAll('.lineage-run')].find((b) => b.querySelector('h2 a')?.getAttribute('href') === '/runs/{run}')?.querySelector('.input-preview')?.innerText"
        ))
        .as_str()
        .unwrap_or_default()
        .to_owned()
    };
    let title = fixture::seller().title;
    for (run, setting) in [
        (m.normal, "creative: false"),
        (m.creative, "creative: true"),
        (m.failing, "judge_fails: true"),
    ] {
        let preview = given(run);
        assert!(
            preview.contains(setting) && preview.contains(&format!("title: {title}")),
            "{setting} and the seller: {preview:?}"
        );
    }
    page.screenshot("candidate");

    // A candidate the filter let through: each check says which rule it met.
    let kept = m
        .store
        .evaluations(
            filter_step,
            &xray::store::EvaluationQuery {
                passed: Some(true),
                limit: Some(1),
                ..Default::default()
            },
        )
        .expect("the filter's evaluations")
        .items
        .into_iter()
        .next()
        .expect("a candidate that passed the filter");
    page.goto(&format!(
        "{url}/candidates?id={}",
        kept.candidate_id.replace(' ', "%20")
    ));
    let checks = page.wait(
        "(() => { const step = [...document.querySelectorAll('.lineage-step')].find((s) => s.querySelector('.lineage-head a')?.textContent === 'apply_filters'); \
          return step ? [...step.querySelectorAll('.lineage-checks li')].map((li) => li.innerText) : null; })()",
        "the filter step in the kept candidate's lineage",
    );
    let checks: Vec<&str> = strings(&checks);
    assert_eq!(checks.len(), 3, "{checks:?}");
    let rule = |name: &str, rule: &str| {
        checks
            .iter()
            .any(|c| c.starts_with(&format!("✓ {name} — ")) && c.contains(rule))
    };
    assert!(
        rule("price", " within ") && rule("rating", " ≥ 3.8 minimum") && rule("category", " in ["),
        "each passed check with the rule it met: {checks:?}"
    );
    // The step's link opens its table searched for this candidate, not all of its rows.
    page.eval(
        "[...document.querySelectorAll('.lineage-step .lineage-head a')].find((a) => a.textContent === 'apply_filters').id = 'follow-filter'",
    );
    page.click("#follow-filter");
    let rows = page.wait(
        "(() => { const rows = [...document.querySelectorAll('.vt-spacer .vt-row .cand-id')].map((c) => c.innerText); \
          return location.pathname.startsWith('/steps/') && rows.length ? rows : null; })()",
        "the filter step's table, searched",
    );
    assert_eq!(
        rows,
        serde_json::json!([kept.candidate_id]),
        "only the candidate followed from its lineage"
    );
    // Its passed checks say what they saw, without opening the row: its category.
    let category = kept
        .checks
        .iter()
        .find(|c| c.name == "category")
        .and_then(|c| c.observed.as_ref())
        .and_then(|v| v.as_str())
        .expect("the category check saw a category")
        .to_owned();
    let cells = page.eval(
        "[...document.querySelectorAll('.vt-spacer .vt-row[data-index=\"0\"] .col-check')].map((c) => c.innerText.replace(/\\s+/g, ' ').trim())",
    );
    assert_eq!(
        cells
            .as_array()
            .and_then(|c| c.last())
            .and_then(|c| c.as_str()),
        Some(format!("✓ {category}").as_str()),
        "{cells}"
    );
    // The one row is the answer: its detail opens without a click, in view, under a table
    // that takes the room of one row. It says, for each check it passed, the rule it met (as
    // the candidate view does).
    let placed = page.wait(
        "(() => { const d = document.querySelector('.candidate-detail'); if (!d) return null; \
          const s = document.querySelector('.vt-scroll').getBoundingClientRect(); \
          return { top: d.getBoundingClientRect().top, view: innerHeight, table: s.height, \
                   selected: document.querySelectorAll('.vt-row.selected').length }; })()",
        "the one candidate's detail, opened",
    );
    assert!(
        placed["top"].as_f64() < placed["view"].as_f64() && placed["table"].as_f64() < Some(80.0),
        "the detail in view, the table one row high: {placed}"
    );
    assert_eq!(placed["selected"], 1, "its row marked: {placed}");
    let reasons = page.wait(
        "(() => { const rows = [...document.querySelectorAll('.candidate-detail table tbody tr')]; \
          return rows.length ? rows.map((r) => `${r.cells[0].innerText}: ${r.cells[2].innerText}`) : null; })()",
        "the kept candidate's checks in the step's detail",
    );
    let reasons: Vec<&str> = strings(&reasons);
    assert!(
        reasons.len() == 3
            && reasons[0].starts_with("price: ")
            && reasons[0].contains(" within ")
            && reasons[1].starts_with("rating: ")
            && reasons[1].contains(" ≥ 3.8 minimum")
            && reasons[2].starts_with("category: ")
            && reasons[2].contains(" in ["),
        "each passed check with the rule it met: {reasons:?}"
    );

    // The candidate a run selected: why it was selected, and what the judge said of it.
    let selected = m
        .store
        .execution(m.normal)
        .expect("query")
        .expect("the run")
        .output
        .and_then(|o| o.to_value().as_str().map(str::to_owned))
        .expect("the run selected a candidate");
    page.goto(&format!("{url}/candidates?id={selected}"));
    let run = page.wait(
        &format!(
            "[...document.querySelectorAll('.lineage-run')].find((b) => b.querySelector('h2 a')?.getAttribute('href') === '/runs/{}')?.innerText",
            m.normal
        ),
        "the run that selected it",
    );
    let run = run.as_str().unwrap_or("");
    assert!(
        run.contains("Selected by rank_and_select — highest weighted score"),
        "why it was selected: {run}"
    );
    let product = fixture::catalog()
        .into_iter()
        .find(|p| p.asin == selected)
        .expect("the selected product is in the catalog");
    // As the viewer writes it: three decimals at most.
    let confidence = (fixture::judge_confidence(&product) * 1000.0).round() / 1000.0;
    assert!(
        run.contains(&format!("confidence {confidence}")),
        "the judge's confidence ({confidence}): {run}"
    );
    let id = m.normal.to_string();
    assert!(
        run.contains(&format!("…{}", &id[id.len() - 8..])),
        "the run's short id tells it from the pipeline's other runs: {run}"
    );
    assert!(
        run.contains("rationale: the product itself"),
        "what the judge said of it: {run}"
    );
    // The judge's step, searched for it: the row's detail says the same, on one line.
    page.eval(&format!(
        "[...document.querySelectorAll('.lineage-run')].find((b) => b.querySelector('h2 a')?.getAttribute('href') === '/runs/{}') \
           .querySelectorAll('.lineage-head a').forEach((a) => {{ if (a.textContent === 'relevance_check') a.id = 'follow-judge'; }})",
        m.normal
    ));
    page.click("#follow-judge");
    page.wait(
        "location.pathname.startsWith('/steps/') && document.querySelectorAll('.vt-spacer .vt-row .cand-id').length === 1",
        "the judge's table, searched for the selected candidate",
    );
    page.click(".vt-spacer .vt-row[data-index='0'] .vt-cell:nth-child(2)");
    let said = page.wait(
        "document.querySelector('.candidate-detail .snapshot-line')?.innerText",
        "the judge's rationale in the row's detail",
    );
    assert_eq!(said, "rationale: the product itself");
}

#[test]
fn compare_with_from_a_run_picks_the_run_whose_input_is_most_alike() {
    let m = main();
    let url = m.server.url();
    let page = Page::launch();
    // The creative run's "Compare with…": not the newest run (another pipeline's), nor the run
    // whose judge failed (it differs in two settings), but the normal run (one).
    page.goto(&format!("{url}/runs/{}", m.creative));
    page.click("a.button[href^='/compare?a=']");
    let b = page.wait(
        "document.querySelector('select[name=b]')?.value || null",
        "run B chosen",
    );
    assert_eq!(b, m.normal.to_string(), "the run most like A");
    page.click("form[aria-label='Pick two runs'] button[type=submit]");
    let cards = page.wait(
        "(() => { const c = [...document.querySelectorAll('.cmp-card .cmp-input')].map((p) => p.innerText); return c.length === 2 ? c : null; })()",
        "what each run was given",
    );
    assert!(
        cards[0]
            .as_str()
            .unwrap_or("")
            .starts_with("creative: true")
            && cards[1]
                .as_str()
                .unwrap_or("")
                .starts_with("creative: false"),
        "each card says what its run was given, what differs first: {cards}"
    );
}

#[xray::execution(name = "alike")]
fn alike_run(category: &str, scope: &str, market: &str) -> usize {
    judge_all(3, scope == "exact")
}

#[test]
fn compare_with_passes_over_a_run_given_the_very_same_input() {
    let path = fixture::fresh_db("alike");
    let (layer, guard) = xray::layer().sqlite(&path).build().expect("a layer");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        alike_run("Laptop Stands", "department", "US"); // A
        alike_run("Laptop Stands", "department", "US"); // the same input again
        alike_run("Laptop Stands", "exact", "US"); // one setting apart
        alike_run("Water Bottles", "department", "EU"); // another seller, the newest
    });
    assert!(guard.flush(), "recorded");
    drop(guard);
    let (server, store) = fixture::serve(&path, None);
    let runs = store
        .list_executions(&xray::store::ExecutionQuery::default())
        .expect("the runs")
        .items;
    assert_eq!(runs.len(), 4);
    // Newest first.
    let (a, one_apart) = (runs[3].id, runs[1].id);
    let page = Page::launch();
    page.goto(&format!("{}/compare?a={a}", server.url()));
    let b = page.wait(
        "document.querySelector('select[name=b]')?.value || null",
        "run B chosen",
    );
    assert_eq!(
        b,
        one_apart.to_string(),
        "the run one setting apart, not the repeat of A's input"
    );
}

#[test]
fn compare_two_runs_shows_changed_verdicts_with_reasons() {
    let m = main();
    let url = m.server.url();
    let page = Page::launch();
    page.goto(&format!("{url}/"));
    page.wait(&format!("{RUN_ROWS}.length === 4"), "the runs");
    page.click(&format!("tr[data-id='{}'] input[type=checkbox]", m.normal));
    page.click(&format!(
        "tr[data-id='{}'] input[type=checkbox]",
        m.creative
    ));
    page.wait(
        "!document.querySelector('.page-actions button.primary').disabled",
        "compare enabled",
    );
    page.click(".page-actions button.primary");
    page.wait(
        &format!(
            "location.pathname === '/compare' && location.search.includes('a={}') && location.search.includes('b={}')",
            m.normal, m.creative
        ),
        "the compare URL",
    );
    // Phone cases in range and well rated: rejected by category in A, passed in B.
    let changed: Vec<fixture::Product> =
        fixture::search_hits(&fixture::keywords(false), &fixture::catalog())
            .into_iter()
            .filter(|p| {
                p.category == "Phone Cases"
                    && (20.0..=80.0).contains(&p.price)
                    && p.rating >= fixture::MIN_RATING
            })
            .collect();
    assert!(
        !changed.is_empty(),
        "the fixture has phone cases that got through"
    );
    let row = page.wait(
        "[...document.querySelectorAll('.compare-table tbody tr')].find((r) => r.innerText.startsWith('apply_filters'))?.innerText",
        "the filter step paired",
    );
    let row = row.as_str().unwrap_or("");
    assert!(row.contains("input differs"), "{row}");
    // The rule that changed: B's filter allowed phone cases. Both sides' filters are shown.
    assert!(row.contains("filters differ"), "{row}");
    let filters = page.wait(
        "[...document.querySelectorAll('.cmp-payload')].find((p) => p.querySelector('h4')?.innerText === 'Filters')?.innerText",
        "the two filters side by side",
    );
    let filters = filters.as_str().unwrap_or("");
    assert!(filters.contains("Phone Cases"), "{filters}");
    assert!(
        row.contains(&format!("{} verdicts changed", changed.len())),
        "{row}"
    );
    let first = &changed[0];
    let change = page.wait(
        &format!(
            "[...document.querySelectorAll('.verdict-changes tbody tr')].find((r) => r.querySelector('th a')?.innerText === {})?.innerText",
            js_str(&first.asin)
        ),
        "the phone case's changed verdict",
    );
    let change = change.as_str().unwrap_or("");
    assert!(
        change.contains("category: Phone Cases not in [Laptop Stands]")
            && change.contains("passed"),
        "the reasons on each side: {change}"
    );
    // And the rule the phone case met where it passed: why that run let it through.
    assert!(
        change.contains("category: Phone Cases in [Laptop Stands, Phone Cases]"),
        "the rule met on the side that passed: {change}"
    );
    assert!(
        page.eval("document.querySelectorAll('.cmp-payload .jt-diff').length > 0") == true,
        "the differing input is highlighted"
    );
    // The judge of B saw the phone cases its filter let through; A's judge never saw them.
    let judge = page.wait(
        "[...document.querySelectorAll('.compare-table tbody tr')].find((r) => r.innerText.startsWith('relevance_check'))?.innerText",
        "the judge paired",
    );
    let judge = judge.as_str().unwrap_or("");
    assert!(
        judge.contains(&format!("{} only in B", thousands(changed.len())))
            && !judge.contains("only in A"),
        "{judge}"
    );
    let caption = page.wait(
        "[...document.querySelectorAll('table.only-in[data-side=\"B\"] caption')].map((c) => c.textContent).join('|')",
        "the candidates only B judged",
    );
    assert!(
        caption.as_str().unwrap_or("").contains(&format!(
            "{} candidates judged by run B but not by run A",
            thousands(changed.len())
        )),
        "{caption}"
    );
    page.screenshot("compare");
}

#[xray::execution(name = "live_pipeline", tags("live"), skip(go_on, finish))]
fn live_run(go_on: &mpsc::Receiver<()>, finish: &mpsc::Receiver<()>) -> u32 {
    let a = first_step();
    go_on.recv().ok();
    a + late_step(finish)
}

#[xray::step(kind = "search")]
fn first_step() -> u32 {
    1
}

#[xray::step(kind = "llm", skip(finish))]
fn late_step(finish: &mpsc::Receiver<()>) -> u32 {
    finish.recv().ok();
    2
}

#[test]
fn a_run_still_recording_updates_live_and_the_connection_recovers() {
    let path = fixture::fresh_db("live");
    let (server, store) = fixture::serve(&path, None);
    let url = server.url();
    let page = Page::launch();
    page.goto(&format!("{url}/"));
    page.wait(
        "document.querySelector('#conn').dataset.state === 'live'",
        "the live connection",
    );
    page.wait(
        "document.querySelector('.list-status')?.innerText.startsWith('No runs recorded yet')",
        "an empty list",
    );
    page.run("window.notReloaded = true;");

    let (go_tx, go_rx) = mpsc::channel();
    let (finish_tx, finish_rx) = mpsc::channel();
    let recorder_path = path.clone();
    let recorder = std::thread::spawn(move || {
        let (layer, guard) = xray::layer()
            .sqlite(&recorder_path)
            .flush_interval(Duration::from_millis(10))
            .build()
            .expect("the layer builds");
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || live_run(&go_rx, &finish_rx));
        assert!(guard.flush_timeout(Duration::from_secs(10)));
    });

    // The new run appears in the list, running, without a reload.
    page.wait(
        &format!("{RUN_ROWS}.length === 1 && {RUN_ROWS}[0].dataset.status === 'running'"),
        "the new run, running",
    );
    assert!(page.text("table.runs tbody tr").contains("live_pipeline"));
    page.click("table.runs tbody tr a.run-link");
    page.wait(
        "[...document.querySelectorAll('.waterfall .wf-link')].map((a) => a.innerText).join() === 'first_step'",
        "the first step",
    );
    // A step appears while the page is open, and grows while it runs.
    go_tx.send(()).expect("the recorder waits");
    page.wait(
        "document.querySelector('.wf-row[data-status=\"running\"] .wf-link')?.innerText === 'late_step'",
        "the late step, running",
    );
    let before = page.wait(
        "document.querySelector('.wf-row[data-status=\"running\"] .wf-dur-text')?.innerText",
        "a running duration",
    );
    page.wait(
        &format!(
            "(() => {{ const t = document.querySelector('.wf-row[data-status=\"running\"] .wf-dur-text')?.innerText; return t && t !== {}; }})()",
            before
        ),
        "the running step's duration growing",
    );
    page.screenshot("run-live");
    finish_tx.send(()).expect("the recorder waits");
    page.wait(
        "document.querySelector('h1 .badge')?.innerText === 'ok' && !document.querySelector('.wf-row[data-status=\"running\"]')",
        "the run finished",
    );
    assert_eq!(
        page.eval("window.notReloaded === true"),
        true,
        "all of it without a reload"
    );
    recorder.join().expect("the recorder ends");

    // The server goes away: the indicator says so; it comes back: the page reconnects by itself.
    let addr = server.local_addr();
    drop(server);
    page.wait(
        "document.querySelector('#conn').dataset.state === 'offline' && document.querySelector('#conn').innerText.includes('lost')",
        "the indicator showing live updates lost",
    );
    let config = xray_server::Config {
        addr,
        ..xray_server::Config::default()
    };
    let _again = xray_server::BackgroundServer::start(store, config).expect("the server restarts");
    page.wait_for(
        "document.querySelector('#conn').dataset.state === 'live'",
        "the page reconnecting by itself",
        Duration::from_secs(30),
    );
}

#[test]
fn a_100000_evaluation_step_scrolls_to_its_end() {
    let m = main();
    let url = m.server.url();
    let page = Page::launch();
    let bulk = step_id(m.store.as_ref(), m.bulk, "score_all");
    page.goto(&format!("{url}/steps/{bulk}"));
    page.wait(
        "document.querySelector('.count-line')?.innerText === '100,000 candidates'",
        "the count of candidates",
    );
    assert!(
        page.eval("document.querySelector('.candidates .notice-warn') === null") == true,
        "not a sample"
    );
    let started = Instant::now();
    let last = page.wait_for(
        "(() => { const s = document.querySelector('.vt-scroll'); s.scrollTop = s.scrollHeight; \
          const r = document.querySelector('.vt-row[aria-rowindex=\"100001\"]'); \
          return r && r.dataset.placeholder === '0' ? r.innerText : ''; })()",
        "the last row",
        Duration::from_secs(120),
    );
    let elapsed = started.elapsed();
    let last = last.as_str().unwrap_or("");
    assert!(
        last.contains("C099999") && last.contains("Bulk candidate 99999"),
        "the last candidate: {last}"
    );
    println!("scrolled to row 100,000 in {elapsed:?}");
    let rendered = page.eval("document.querySelectorAll('.vt-spacer .vt-row').length");
    assert!(
        rendered.as_u64().unwrap_or(u64::MAX) < 100,
        "only the rows in view are in the DOM: {rendered}"
    );
    // … up to the last, at the end.
    let status = page.text(".vt-status");
    assert!(status.contains("–100,000 of 100,000"), "{status}");
    page.screenshot("step-100k-end");

    // A sampled step says so, and of how many.
    let sampled = step_id(m.store.as_ref(), m.bulk, "prefilter");
    page.goto(&format!("{url}/steps/{sampled}"));
    let note = page.wait(
        "document.querySelector('.candidates .notice-warn')?.innerText",
        "the sample notice",
    );
    let note = note.as_str().unwrap_or("");
    assert!(
        note.contains(&format!(
            "{} of {} evaluations were kept",
            thousands(fixture::SAMPLED_CAP),
            thousands(fixture::SAMPLED_TOTAL)
        )),
        "{note}"
    );
}

/// A check's values, from the step's checks table: what the category check saw, with how
/// many passed and failed each, as the store counts them.
#[test]
fn a_checks_values_open_under_it_in_the_checks_table() {
    let m = main();
    let url = m.server.url();
    let filter = step_id(m.store.as_ref(), m.creative, "apply_filters");
    let expected: Vec<String> = m
        .store
        .check_values(filter, "category", 20)
        .expect("the store counts")
        .values
        .iter()
        .map(|v| {
            format!(
                "{}|{}|{}",
                v.observed.as_deref().unwrap_or("no value recorded"),
                thousands(v.passed as usize),
                thousands(v.failed as usize)
            )
        })
        .collect();
    assert!(
        expected.len() >= 2,
        "the fixture's search finds several categories"
    );
    let page = Page::launch();
    page.goto(&format!("{url}/steps/{filter}"));
    page.wait(
        "document.querySelector(\".checks-table tr[data-check='category'] .check-values-toggle\")",
        "the category check's row",
    );
    page.click(".checks-table tr[data-check='category'] .check-values-toggle");
    let rows = page.wait(
        "(() => { const t = document.querySelector('.check-values-row table.check-values'); if (!t) return null; \
          return [...t.querySelectorAll(':scope > tbody > tr')].map((r) => [...r.cells].slice(0, 3).map((c) => c.innerText).join('|')); })()",
        "the values the category check saw",
    );
    assert_eq!(rows, serde_json::json!(expected));
    let caption = page.text(".check-values-row p");
    assert!(caption.starts_with("category saw "), "{caption}");
    page.screenshot("check-values");
    // Each count lists its candidates: the least frequent value's, every one, by the value.
    let values = m
        .store
        .check_values(filter, "category", 20)
        .expect("the store counts")
        .values;
    let (row, verdict, value, count) = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v.observed.clone()?, v)))
        .flat_map(|(i, observed, v)| {
            [
                (i, "passed", observed.clone(), v.passed),
                (i, "failed", observed, v.failed),
            ]
        })
        .filter(|c| c.3 > 0)
        .min_by_key(|c| c.3)
        .expect("a value with candidates");
    let wanted: Vec<String> = m
        .store
        .evaluations(
            filter,
            &xray::store::EvaluationQuery {
                check: Some("category".into()),
                observed: Some(value.clone()),
                passed: Some(verdict == "passed"),
                limit: Some(1000),
                ..xray::store::EvaluationQuery::default()
            },
        )
        .expect("the store's rows")
        .items
        .into_iter()
        .map(|e| e.candidate_id)
        .collect();
    assert_eq!(
        wanted.len() as u64,
        count,
        "the store agrees with its counts"
    );
    page.click(&format!(
        ".check-values-row table.check-values > tbody > tr:nth-child({}) button.value-rows[data-verdict='{verdict}']",
        row + 1
    ));
    page.wait(
        &format!(
            "document.querySelector(\".vt-spacer .vt-row[data-index='0'] .cand-id\")?.innerText === {}",
            serde_json::json!(wanted[0])
        ),
        "the value's first candidate",
    );
    assert_eq!(
        page.text(".count-line"),
        format!(
            "{} {} that {verdict} the “category” check with the value “{value}”",
            thousands(count as usize),
            if count == 1 {
                "candidate"
            } else {
                "candidates"
            }
        ),
        "the count the values table gave"
    );
    let address = page.eval("location.search");
    assert!(
        address.as_str().is_some_and(|q| q.contains("observed=")),
        "{address}"
    );
    // The rows drawn are the value's, in the store's order.
    let drawn: Vec<String> = serde_json::from_value(page.eval(
        "[...document.querySelectorAll('.vt-spacer .vt-row[data-placeholder=\"0\"]')].sort((a, b) => a.dataset.index - b.dataset.index).map((r) => r.querySelector('.cand-id').innerText)",
    ))
    .expect("the rows drawn");
    assert!(!drawn.is_empty());
    assert_eq!(drawn[..], wanted[..drawn.len()]);
    assert_eq!(
        page.text(".value-filter"),
        format!("Only the value “{value}” of category · any value")
    );
    // Let go of the value: every candidate that failed (or passed) the check again.
    page.click(".value-filter button");
    page.wait(
        "document.querySelector('.value-filter').hidden && !location.search.includes('observed=')",
        "the value let go",
    );
    // Clicked again, it closes.
    page.click(".checks-table tr[data-check='category'] .check-values-toggle");
    page.wait(
        "!document.querySelector('.check-values-row')",
        "the values closed",
    );
}

/// A search no candidate matches: the table says so, its message whole (not clipped to the
/// height of one row), and no detail opens.
#[test]
fn a_step_table_with_no_match_says_so_whole() {
    let m = main();
    let url = m.server.url();
    let filter = step_id(m.store.as_ref(), m.normal, "apply_filters");
    let page = Page::launch();
    page.goto(&format!("{url}/steps/{filter}?q=no-such-candidate"));
    let fit = page.wait(
        "(() => { const e = document.querySelector('.vt-empty'); if (!e) return null; \
          const s = document.querySelector('.vt-scroll'); \
          return { text: e.innerText, scroll: s.scrollHeight, client: s.clientHeight, \
                   bottom: e.getBoundingClientRect().bottom, edge: s.getBoundingClientRect().bottom }; })()",
        "the empty table's message",
    );
    assert_eq!(fit["text"], "No candidate matches these filters.", "{fit}");
    assert!(
        fit["scroll"].as_f64() <= fit["client"].as_f64()
            && fit["bottom"].as_f64() <= fit["edge"].as_f64(),
        "the message fits in the table: {fit}"
    );
    assert!(page.eval("document.querySelector('.candidate-detail') === null") == true);
}

/// Steps across runs by elimination: the form is in percent, and so may a typed URL be.
#[test]
fn steps_across_runs_take_the_elimination_as_a_fraction_or_a_percent() {
    let m = main();
    let url = m.server.url();
    let expected = m
        .store
        .find_steps(&xray::store::StepQuery {
            kind: Some("filter".into()),
            min_elimination: Some(0.5),
            limit: Some(100),
            ..Default::default()
        })
        .expect("the store answers")
        .items
        .len();
    assert!(
        expected > 0,
        "the fixture has a filter that eliminated half"
    );
    let page = Page::launch();
    for typed in ["0.5", "50"] {
        page.goto(&format!("{url}/steps?kind=filter&min_elimination={typed}"));
        page.wait(
            "document.querySelector('main').dataset.ready === '1' && document.documentElement.dataset.requests === '0'",
            "the steps",
        );
        assert_eq!(
            page.eval("document.querySelector('input[name=min_elimination]').value"),
            "50",
            "min_elimination={typed}"
        );
        assert_eq!(
            page.texts(".steps-table tbody tr").len(),
            expected,
            "min_elimination={typed}: {}",
            page.text(".list-status")
        );
    }
}

#[test]
fn every_view_loads_without_console_errors_or_failed_requests() {
    let m = main();
    let url = m.server.url();
    let store = m.store.as_ref();
    let filter = step_id(store, m.normal, "apply_filters");
    let failed_step = step_id(store, m.failing, "relevance_check");
    let rank = step_id(store, m.creative, "rank_and_select");
    let views = [
        ("view-runs", "/".to_owned()),
        ("view-run", format!("/runs/{}", m.creative)),
        ("view-run-failed", format!("/runs/{}", m.failing)),
        ("view-step", format!("/steps/{filter}")),
        ("view-step-rank", format!("/steps/{rank}")),
        ("view-step-error", format!("/steps/{failed_step}")),
        ("view-candidate-search", "/candidates".to_owned()),
        ("view-candidate", "/candidates?id=B00005".to_owned()),
        (
            "view-steps-query",
            "/steps?kind=filter&min_elimination=0.5".to_owned(),
        ),
        ("view-compare-pick", "/compare".to_owned()),
        (
            "view-compare",
            format!("/compare?a={}&b={}", m.normal, m.creative),
        ),
        ("view-analytics", "/analytics".to_owned()),
        ("view-not-found", "/no/such/view".to_owned()),
    ];
    let page = Page::launch();
    // The detector itself: a failed request and a console error are reported.
    page.goto(&format!("{url}/"));
    page.run("fetch('/api/v1/no-such-route').catch(() => {}); console.error('canary');");
    // The 404 is reported twice (network and console log), independently:
    // wait for both, or the later one lands after `clear_problems` below
    // and is blamed on the first view.
    page.wait_for_problems(&[
        "HTTP 404 for",
        "log error: Failed to load resource",
        "console.error: \"canary\"",
    ]);
    page.clear_problems();
    for (name, path) in &views {
        page.goto(&format!("{url}{path}"));
        page.wait(
            "document.querySelector('main').dataset.ready === '1' && document.documentElement.dataset.requests === '0'",
            &format!("{path} rendered and settled"),
        );
        let heading = page.text("main h1");
        assert!(!heading.is_empty(), "{path} has a heading");
        page.screenshot(name);
    }
    // A selected candidate's "★ selected" badge fits in its Verdict cell (it was cut off).
    page.goto(&format!("{url}/steps/{rank}?sort=score"));
    let fit = page.wait(
        "(() => { const badge = document.querySelector('.vt-row .selected-badge'); if (!badge) return null; \
          const cell = badge.closest('.vt-cell'); \
          const inner = cell.getBoundingClientRect().right - parseFloat(getComputedStyle(cell).paddingRight); \
          const end = badge.getBoundingClientRect().right; \
          return end <= inner + 0.5 ? 'fits' : `the badge ends at ${end}px, the cell's content at ${inner}px`; })()",
        "a selected candidate's badge",
    );
    assert_eq!(fit, "fits");
    // The others passed their (absent) checks but were not selected, and say so.
    assert_eq!(
        page.eval("document.querySelector('.vt-row[data-index=\"1\"] .verdict')?.innerText"),
        "not selected"
    );

    // The help overlay, opened with `?`.
    page.goto(&format!("{url}/steps/{filter}"));
    page.wait(
        "document.querySelector('main').dataset.ready === '1'",
        "the step view",
    );
    page.tab.press_key("?").expect("a key press");
    page.wait(
        "document.querySelector('#help').open",
        "the shortcuts overlay",
    );
    assert!(page.text("#help").contains("Next step of this run"));
    page.screenshot("view-help");
    page.tab.press_key("Escape").expect("a key press");
    page.wait(
        "!document.querySelector('#help').open",
        "the overlay closed",
    );
    // j: the next step of the run, by keyboard.
    page.tab.press_key("j").expect("a key press");
    let next = step_id(store, m.normal, "relevance_check");
    page.wait(
        &format!("location.pathname === '/steps/{next}'"),
        "the next step",
    );

    // The dark theme follows the system.
    page.color_scheme("dark");
    let dark = page.eval("getComputedStyle(document.body).backgroundColor");
    assert_eq!(
        dark, "rgb(15, 18, 23)",
        "a dark background when the system is dark"
    );
    page.screenshot("view-step-dark");
    page.goto(&format!("{url}/runs/{}", m.creative));
    page.wait(
        "document.querySelectorAll('.waterfall .wf-row[data-step]').length === 5",
        "the run",
    );
    page.screenshot("view-run-dark");

    let problems = page.problems();
    assert!(
        problems.is_empty(),
        "the views reported problems: {problems:#?}"
    );
}

/// The runs list on 100,000 runs asks for one page, not the lot. Its render time is printed,
/// not asserted (the machines are shared and noisy); what is asserted is what makes it fast:
/// 50 rows, and API answers whose size does not grow with the number of runs.
#[test]
fn the_runs_list_on_100000_runs_loads_one_page() {
    let built = Instant::now();
    let path = fixture::many_runs("100k", 100_000);
    println!("wrote 100,000 runs in {:?}", built.elapsed());
    let (server, _store) = fixture::serve(&path, None);
    let page = Page::launch();
    page.goto(&format!("{}/", server.url()));
    let ms = page.wait(
        "performance.getEntriesByName('xray:runs-rendered')[0]?.startTime",
        "the first render of the runs list",
    );
    let ms = ms.as_f64().expect("a time");
    assert_eq!(
        page.eval(&format!("{RUN_ROWS}.length")),
        50,
        "a first page of runs"
    );
    println!("first render of the runs list on 100,000 runs: {ms:.0} ms after navigation start");
    let api_bytes = page.eval(
        "performance.getEntriesByType('resource')\
         .filter((e) => new URL(e.name).pathname.startsWith('/api/'))\
         .reduce((sum, e) => sum + e.decodedBodySize, 0)",
    );
    let api_bytes = api_bytes.as_f64().expect("a size");
    println!("the API's answers: {api_bytes:.0} bytes");
    // A page of 50 runs is ~25 KB; all 100,000 would be ~50 MB.
    assert!(
        api_bytes > 1_000.0 && api_bytes <= 256.0 * 1024.0,
        "{api_bytes} bytes of API answers"
    );
    // Page weight: everything the viewer loaded but the API's answers.
    let bytes = page.eval(
        "performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))\
         .filter((e) => !new URL(e.name).pathname.startsWith('/api/'))\
         .reduce((sum, e) => sum + e.decodedBodySize, 0)",
    );
    let bytes = bytes.as_f64().expect("a size");
    println!("the viewer's files as loaded: {bytes:.0} bytes");
    assert!(bytes > 10_000.0 && bytes <= 300.0 * 1024.0, "{bytes} bytes");
    let problems = page.problems();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_server_with_a_token_prompts_for_it() {
    let m = main();
    let (server, _store) = fixture::serve(&m.path, Some("s3cret-token"));
    let page = Page::launch();
    page.goto(&format!("{}/", server.url()));
    page.wait("document.querySelector('#token').open", "the token prompt");
    page.screenshot("token-prompt");
    page.set_value("#token input", "wrong");
    page.click("#token button[type=submit]");
    page.wait(
        "!document.querySelector('#token .token-error').hidden",
        "the refusal",
    );
    page.set_value("#token input", "s3cret-token");
    page.click("#token button[type=submit]");
    page.wait(
        "!document.querySelector('#token').open",
        "the prompt closed",
    );
    page.wait(
        &format!("{RUN_ROWS}.length === 4"),
        "the runs, with the token",
    );
    page.wait(
        "document.querySelector('#conn').dataset.state === 'live'",
        "live updates with the token",
    );
}

#[test]
fn the_runs_list_warns_when_recorders_lost_records_and_says_when_runs_were_sampled_out() {
    let path = fixture::fresh_db("recorder-loss");
    let (server, store) = fixture::serve(&path, None);
    store
        .add_recorder_counts(&xray::store::RecorderCounts {
            dropped: 1_234,
            failed: 5,
            sampled_out: 9_000,
        })
        .expect("the counts are stored");
    let page = Page::launch();
    page.goto(&format!("{}/", server.url()));
    page.wait(
        "document.querySelector('.recorder-loss').dataset.checked === 'true'",
        "the server's counts",
    );
    let text = page.text(".recorder-loss .notice-warn");
    assert!(
        text.contains("1,234 dropped") && text.contains("5 failed to write"),
        "{text}"
    );
    // Sampling is not a loss: said apart, as information, with the way to record every run.
    let text = page.text(".recorder-loss .sampled-out .notice-info");
    assert!(
        text.contains("left out 9,000 runs")
            && text.contains("never recorded, not lost")
            && text.contains(".sample(1.0)"),
        "{text}"
    );
    page.screenshot("runs-recorder-loss");
}

#[xray::step(kind = "filter")]
fn judge_range(first: u32, count: u32) -> usize {
    (first..first + count)
        .filter(|i| {
            xray::evaluate(format!("C{i:04}"))
                .check_min("rating", f64::from(i % 5), 1.0)
                .passed()
        })
        .count()
}

#[xray::execution(name = "only_in_paging")]
fn judging_run(first: u32, count: u32) -> usize {
    judge_range(first, count)
}

/// A server over a fresh database holding the two runs `record` records, with their ids in the
/// order they were recorded (A, then B).
fn serve_two_runs(
    name: &str,
    record: impl FnOnce(),
) -> (xray_server::BackgroundServer, Uuid, Uuid) {
    let path = fixture::fresh_db(name);
    let (layer, guard) = xray::layer().sqlite(&path).build().expect("a layer");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), record);
    assert!(guard.flush(), "recorded");
    drop(guard);
    let (server, store) = fixture::serve(&path, None);
    let runs = store
        .list_executions(&xray::store::ExecutionQuery::default())
        .expect("the runs")
        .items;
    assert_eq!(runs.len(), 2, "two runs");
    // Newest first.
    (server, runs[1].id, runs[0].id)
}

/// Keeps the even candidates: `size` rejects the odd ones, `colour` rejects none.
#[xray::step(kind = "filter")]
fn sieve(count: u32) -> usize {
    (0..count)
        .filter(|i| {
            xray::evaluate(format!("S{i:03}"))
                .check("size", i % 2 == 0, "too big")
                .check("colour", true, "wrong colour")
                .passed()
        })
        .count()
}

#[xray::execution(name = "sieve")]
fn sieve_run(count: u32) -> usize {
    sieve(count)
}

/// A filter one of whose checks let every candidate through: the run's funnel names it under
/// the checks that rejected some, linked to the candidates that passed it.
#[test]
fn a_runs_funnel_names_the_check_that_rejected_nobody() {
    let (server, a, _) = serve_two_runs("rejected-none", || {
        sieve_run(10);
        sieve_run(4);
    });
    let page = Page::launch();
    page.goto(&format!("{}/runs/{a}", server.url()));
    let line = page.wait(
        "document.querySelector('.funnel-row .rejected-none')?.innerText ?? null",
        "the funnel's line of checks that rejected none",
    );
    assert_eq!(line, "Rejected none: colour");
    let lost = page.text(".funnel-row .lost-to");
    assert!(lost.starts_with("size: 5"), "{lost}");
    let href =
        page.eval("document.querySelector('.funnel-row .rejected-none a').getAttribute('href')");
    assert!(
        href.as_str().is_some_and(|h| h.ends_with("?values=colour")),
        "{href}"
    );
    assert_eq!(
        page.eval("document.querySelector('.funnel-row .unattributed-loss')"),
        serde_json::Value::Null,
        "every candidate lost here was rejected by a check"
    );
    // The link opens the step with the values the check saw.
    page.click(".funnel-row .rejected-none a");
    let values = page.wait(
        "document.querySelector('.check-values-row table.check-values')?.innerText ?? null",
        "the values colour saw",
    );
    assert!(
        values
            .as_str()
            .is_some_and(|v| v.contains("no value recorded")),
        "{values}"
    );
    assert_eq!(
        page.eval("document.querySelector(\".checks-table tr[data-check='colour'] .check-values-toggle\").getAttribute('aria-expanded')"),
        "true"
    );
}

#[test]
fn compare_pages_through_every_changed_verdict_past_the_first_500() {
    let (server, a, b) = serve_two_runs("verdict-paging", || {
        verdict_run(600, true);
        verdict_run(600, false);
    });
    let page = Page::launch();
    page.goto(&format!("{}/compare?a={a}&b={b}", server.url()));
    const ROWS: &str = "document.querySelectorAll('table.verdict-changes tbody tr').length";
    page.wait(&format!("{ROWS} === 500"), "the comparison's first 500");
    // The number is known before every page is listed.
    let caption = page.text("table.verdict-changes caption");
    assert_eq!(
        caption,
        "600 candidates judged differently · showing the first 500, in A's recorded order"
    );
    let badge = page.eval(
        "[...document.querySelectorAll('.compare-table tbody tr')].find((r) => r.innerText.startsWith('judge_all'))?.querySelector('.diff-verdicts')?.innerText",
    );
    assert_eq!(badge, "600 verdicts changed");
    let why = page.eval(
        "[...document.querySelectorAll('.compare-table tbody tr')].find((r) => r.innerText.startsWith('judge_all'))?.querySelector('.diff-verdicts')?.title",
    );
    assert_eq!(why, "Changed by check: in stock 400 · price 200");
    // The badge leads to the changes: the first check's button takes the keyboard.
    page.click(".compare-table a.diff-verdicts");
    page.wait(
        "document.activeElement?.dataset?.check === 'in stock'",
        "the keyboard on the first check's button",
    );
    let more = "document.querySelector('button.changes-more')";
    assert_eq!(
        page.eval(&format!("{more}.innerText")),
        "Show 100 more (100 left)"
    );
    page.eval(&format!("{more}.click()"));
    page.wait(&format!("{ROWS} === 600"), "every change");
    page.wait(&format!("{more}.hidden === true"), "no more to show");
    assert_eq!(
        page.text("table.verdict-changes caption"),
        "600 candidates judged differently"
    );
    let ids: Vec<String> = serde_json::from_value(page.eval(
        "[...document.querySelectorAll('table.verdict-changes tbody th a')].map((a) => a.innerText)",
    ))
    .expect("the ids");
    let expected: Vec<String> = (0..600).map(|i| format!("V{i:04}")).collect();
    assert_eq!(ids, expected, "each once, in A's recorded order");
    let status = page.text(".changes-actions [role=status]");
    assert_eq!(status, "Showing all 600.");

    // Which check changed them: one button per check, most first; pressed, only its changes.
    let buttons: Vec<String> = serde_json::from_value(page.eval(
        "[...document.querySelectorAll('.check-changes button.check-change')].map((b) => b.innerText)",
    ))
    .expect("the buttons");
    assert_eq!(
        buttons,
        [
            "in stock 400 failed it in B only",
            "price 200 failed it in B only"
        ]
    );
    let price = "document.querySelector('button.check-change[data-check=\"price\"]')";
    page.eval(&format!("{price}.click()"));
    page.wait(
        &format!("{price}.getAttribute('aria-pressed') === 'true' && {ROWS} === 100"),
        "the price check's first page",
    );
    assert_eq!(
        page.text(".check-changes [role=status]"),
        "Showing the 200 changes of price."
    );
    assert_eq!(
        page.text("table.verdict-changes caption"),
        "200 candidates judged differently because of the price check (failed in one run only) · \
         showing the first 100, in A's recorded order"
    );
    page.eval(&format!("{more}.click()"));
    page.wait(&format!("{ROWS} === 200"), "every price change");
    let ids: Vec<String> = serde_json::from_value(page.eval(
        "[...document.querySelectorAll('table.verdict-changes tbody th a')].map((a) => a.innerText)",
    ))
    .expect("the ids");
    let expected: Vec<String> = (0..600)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("V{i:04}"))
        .collect();
    assert_eq!(ids, expected, "the candidates B failed on price, each once");
    // The address names the list: opened again, it shows the same.
    let address = page.eval("location.search");
    assert!(
        address
            .as_str()
            .is_some_and(|q| q.contains("step=judge_all") && q.contains("check=price")),
        "{address}"
    );
    page.goto(&format!(
        "{}/compare{}",
        server.url(),
        address.as_str().unwrap_or("")
    ));
    page.wait(
        &format!("{price}?.getAttribute('aria-pressed') === 'true' && {ROWS} === 100"),
        "the shared link's list",
    );
    // Pressed again: every change, as the comparison first listed them.
    page.eval(&format!("{price}.click()"));
    page.wait(
        &format!("{price}.getAttribute('aria-pressed') === 'false' && {ROWS} === 500"),
        "all changes again",
    );
    assert!(
        page.eval("location.search.includes('check=')") == false,
        "the address lets go of the check too"
    );
}

#[test]
fn compare_pages_through_every_candidate_only_one_run_judged() {
    let (server, a, b) = serve_two_runs("only-in-paging", || {
        judging_run(0, 130); // A: C0000..C0129
        judging_run(125, 10); // B: C0125..C0134, so 125 only in A and 5 only in B
    });
    let page = Page::launch();
    page.goto(&format!("{}/compare?a={a}&b={b}", server.url()));
    const A_ROWS: &str =
        "document.querySelectorAll('table.only-in[data-side=\"A\"] tbody tr').length";
    page.wait(&format!("{A_ROWS} === 20"), "the comparison's first 20");
    // The picker tells the two runs of one pipeline apart by their input.
    let picked = page.eval(
        "[...document.querySelectorAll('select[name=a], select[name=b]')].map((s) => s.selectedOptions[0].innerText).join(' | ')",
    );
    let picked = picked.as_str().unwrap_or("");
    assert!(
        picked.contains("count: 130") && picked.contains("count: 10"),
        "{picked}"
    );
    let caption = page.text("table.only-in[data-side=\"A\"] caption");
    assert!(
        caption.contains("125 candidates judged by run A but not by run B · showing 20:"),
        "{caption}"
    );
    // What they were: the values at least a fifth of them had (here each rating, 25 times).
    assert!(
        caption.ends_with("What they were: rating 0.0 ×25 (all failed), 1.0 ×25, 2.0 ×25"),
        "{caption}"
    );
    let more = "document.querySelector('table.only-in[data-side=\"A\"]').closest('.table-wrap').nextElementSibling.querySelector('button')";
    assert_eq!(
        page.eval(&format!("{more}.innerText")),
        "Show 100 more (105 left)",
        "a button for the next page"
    );
    page.eval(&format!("{more}.click()"));
    page.wait(&format!("{A_ROWS} === 120"), "the next 100");
    assert_eq!(
        page.eval(&format!("{more}.innerText")),
        "Show 5 more (5 left)"
    );
    assert_eq!(
        page.eval("document.activeElement.innerText"),
        "C0026",
        "the keyboard goes on from the first new row"
    );
    page.eval(&format!("{more}.click()"));
    page.wait(&format!("{A_ROWS} === 125"), "every one");
    page.wait(&format!("{more}.hidden === true"), "no more to show");
    let ids: Vec<String> = serde_json::from_value(page.eval(
        "[...document.querySelectorAll('table.only-in[data-side=\"A\"] tbody th a')].map((a) => a.innerText)",
    ))
    .expect("the ids");
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 125, "each once");
    assert!(
        !ids.iter().any(|id| id.as_str() >= "C0125"),
        "none B judged too"
    );
    assert!(
        page.text("table.only-in[data-side=\"A\"] caption")
            .starts_with("125 candidates judged by run A but not by run B · selected"),
        "the caption no longer says \"showing\""
    );
    // The steps table's badge leads to the table: its panel open, the first row focused.
    page.eval(
        "document.querySelectorAll('details.cmp-detail').forEach((d) => { d.open = false; })",
    );
    page.eval(
        "[...document.querySelectorAll('.compare-table a.diff-only')].find((a) => a.innerText === '5 only in B').click()",
    );
    assert_eq!(
        page.eval(
            "document.activeElement.closest('table.only-in')?.dataset.side + ' ' + document.activeElement.closest('details').open"
        ),
        "B true"
    );
    // B's five fit in the comparison: no button.
    assert_eq!(
        page.eval("document.querySelectorAll('table.only-in[data-side=\"B\"] tbody tr').length"),
        5
    );
    assert_eq!(
        page.eval("document.querySelector('table.only-in[data-side=\"B\"]').closest('.table-wrap').nextElementSibling.hidden"),
        true
    );
}
