//! A real headless Chromium, driven over the DevTools protocol by `headless_chrome`.
//!
//! Why `headless_chrome` rather than `fantoccini` + chromedriver: the DevTools protocol reports
//! what a WebDriver session cannot see (console errors, uncaught exceptions, CSP violations,
//! failed and 4xx/5xx requests, as events), one process fewer to start and stop per test, and it
//! is synchronous, so the tests read as plain steps. Only its default `offline` feature is used
//! (the protocol description bundled at build time; no `fetch`, nothing downloaded).
//!
//! Each test launches its own browser (a fresh profile in a temporary directory) and drops it at
//! the end, so no Chromium outlives the test binary. Everything the page reports as a problem
//! (console errors, uncaught exceptions, CSP violations, failed or 4xx/5xx requests) is collected
//! for [`Page::problems`].

use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Emulation, Network, Page as CdpPage, Runtime};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Chromium the tests drive: `$XRAY_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium_path() -> PathBuf {
    let path = std::env::var_os("XRAY_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "the browser tests need Chromium at {} (set XRAY_CHROMIUM to use another). Install it with \
         `apt-get install -y chromium chromium-driver` (Debian), as .ci/run does.",
        path.display()
    );
    path
}

/// How long a condition may take before a test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A browser with one page open.
pub struct Page {
    pub tab: Arc<Tab>,
    problems: Arc<Mutex<Vec<String>>>,
    // Declared last: dropped after the tab, which kills Chromium.
    _browser: Browser,
    _profile: tempfile::TempDir,
    /// Chromium's `TMPDIR`: the `org.chromium.Chromium.*` directories it makes there go
    /// with the page instead of piling up in `/tmp`.
    _scratch: tempfile::TempDir,
}

impl Page {
    /// Launches Chromium (1280×800) with a fresh profile and opens a blank page.
    pub fn launch() -> Page {
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let scratch = tempfile::tempdir().expect("a temporary directory for Chromium");
        let args: Vec<&OsStr> = [
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--mute-audio",
        ]
        .iter()
        .map(OsStr::new)
        .collect();
        let options = LaunchOptions {
            headless: true,
            sandbox: false,
            path: Some(chromium_path()),
            user_data_dir: Some(profile.path().to_path_buf()),
            window_size: Some((1280, 800)),
            idle_browser_timeout: Duration::from_secs(300),
            args,
            process_envs: Some(
                [(
                    "TMPDIR".to_string(),
                    scratch.path().to_string_lossy().into_owned(),
                )]
                .into(),
            ),
            ..LaunchOptions::default()
        };
        let browser = Browser::new(options).expect("Chromium starts (see chromium_path)");
        let tab = browser.new_tab().expect("a tab");
        tab.set_default_timeout(TIMEOUT);
        // The viewport itself 1280×800 (the window size includes the browser's frame).
        tab.call_method(Emulation::SetDeviceMetricsOverride {
            width: 1280,
            height: 800,
            device_scale_factor: 1.0,
            mobile: false,
            scale: None,
            screen_width: None,
            screen_height: None,
            position_x: None,
            position_y: None,
            dont_set_visible_size: None,
            screen_orientation: None,
            viewport: None,
            display_feature: None,
            device_posture: None,
        })
        .expect("a 1280×800 viewport");
        tab.call_method(CdpPage::SetLifecycleEventsEnabled { enabled: true })
            .ok();
        tab.call_method(Network::Enable {
            max_total_buffer_size: None,
            max_resource_buffer_size: None,
            max_post_data_size: None,
            report_direct_socket_traffic: None,
            enable_durable_messages: None,
        })
        .expect("Network domain");
        tab.enable_log().expect("Log domain");
        tab.enable_runtime().expect("Runtime domain");
        let problems = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&problems);
        tab.add_event_listener(Arc::new(move |event: &Event| {
            let problem = match event {
                Event::RuntimeExceptionThrown(e) => {
                    let d = &e.params.exception_details;
                    let description = d
                        .exception
                        .as_ref()
                        .and_then(|x| x.description.clone())
                        .unwrap_or_default();
                    Some(format!(
                        "uncaught exception at {}:{}: {} {description}",
                        d.url.clone().unwrap_or_default(),
                        d.line_number,
                        d.text
                    ))
                }
                Event::RuntimeConsoleAPICalled(e)
                    if matches!(
                        e.params.Type,
                        Runtime::ConsoleAPICalledEventTypeOption::Error
                            | Runtime::ConsoleAPICalledEventTypeOption::Assert
                    ) =>
                {
                    let args: Vec<String> = e
                        .params
                        .args
                        .iter()
                        .map(|a| {
                            a.value
                                .as_ref()
                                .map(|v| v.to_string())
                                .or_else(|| a.description.clone())
                                .unwrap_or_default()
                        })
                        .collect();
                    Some(format!("console.error: {}", args.join(" ")))
                }
                Event::LogEntryAdded(e)
                    if matches!(
                        e.params.entry.level,
                        headless_chrome::protocol::cdp::Log::LogEntryLevel::Error
                    ) =>
                {
                    Some(format!(
                        "log error: {} ({})",
                        e.params.entry.text,
                        e.params.entry.url.clone().unwrap_or_default()
                    ))
                }
                Event::NetworkLoadingFailed(e) if e.params.canceled != Some(true) => Some(format!(
                    "request failed: {} ({:?})",
                    e.params.error_text, e.params.Type
                )),
                Event::NetworkResponseReceived(e) if e.params.response.status >= 400 => {
                    Some(format!(
                        "HTTP {} for {}",
                        e.params.response.status, e.params.response.url
                    ))
                }
                _ => None,
            };
            if let Some(p) = problem {
                if let Ok(mut list) = sink.lock() {
                    list.push(p);
                }
            }
        }))
        .expect("an event listener");
        Page {
            tab,
            problems,
            _browser: browser,
            _profile: profile,
            _scratch: scratch,
        }
    }

    /// Opens `url` and waits until the viewer's shell is there.
    pub fn goto(&self, url: &str) {
        self.tab.navigate_to(url).expect("navigation starts");
        self.tab.wait_until_navigated().expect("navigation ends");
        self.wait(
            "document.querySelector('#main') !== null",
            "the viewer's shell",
        );
    }

    /// Evaluates `js` (an expression) and returns its value as JSON.
    pub fn eval(&self, js: &str) -> Value {
        let wrapped = format!("(async () => JSON.stringify((await ({js})) ?? null))()");
        let result = self
            .tab
            .evaluate(&wrapped, true)
            .unwrap_or_else(|e| panic!("evaluating `{js}` failed: {e}"));
        match result.value {
            Some(Value::String(text)) => serde_json::from_str(&text).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// Runs `js` for its effect (statements allowed).
    pub fn run(&self, js: &str) {
        let wrapped = format!("(() => {{ {js} }})(); true");
        self.tab
            .evaluate(&wrapped, true)
            .unwrap_or_else(|e| panic!("running `{js}` failed: {e}"));
    }

    /// Waits until the expression `js` is truthy and returns its value; fails naming `what`
    /// after [`TIMEOUT`], with the page's visible text to show what it showed instead.
    pub fn wait(&self, js: &str, what: &str) -> Value {
        self.wait_for(js, what, TIMEOUT)
    }

    /// [`Page::wait`] with another timeout.
    pub fn wait_for(&self, js: &str, what: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let value = self.eval(js);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(_) => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > timeout {
                let text = self.eval("document.querySelector('main')?.innerText ?? ''");
                panic!(
                    "timed out after {timeout:?} waiting for {what} (`{js}`).\nThe page showed:\n{}\nProblems: {:?}",
                    text.as_str().unwrap_or(""),
                    self.problems()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clicks the first element matching `selector` (a real mouse click at its centre).
    ///
    /// The page may render the element again between the moment the page's script sees it and
    /// the moment the browser is asked for it (a list that reloads, a row a live update
    /// replaces): the element is then looked for again, until [`TIMEOUT`].
    pub fn click(&self, selector: &str) {
        let started = Instant::now();
        let element = loop {
            self.wait(
                &format!("document.querySelector({}) !== null", js_str(selector)),
                selector,
            );
            match self.tab.find_element(selector) {
                Ok(element) => break element,
                Err(e) if started.elapsed() > TIMEOUT => {
                    panic!("no element {selector} for {TIMEOUT:?}: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        element.scroll_into_view().ok();
        element
            .click()
            .unwrap_or_else(|e| panic!("clicking {selector} failed: {e}"));
    }

    /// Sets a form control's value the way a person's input would (an `input` and a `change`
    /// event).
    pub fn set_value(&self, selector: &str, value: &str) {
        self.wait(
            &format!("document.querySelector({}) !== null", js_str(selector)),
            selector,
        );
        self.run(&format!(
            "const el = document.querySelector({}); el.focus(); el.value = {}; \
             el.dispatchEvent(new Event('input', {{ bubbles: true }})); \
             el.dispatchEvent(new Event('change', {{ bubbles: true }}));",
            js_str(selector),
            js_str(value)
        ));
    }

    /// The visible text of the first element matching `selector` ("" if none).
    pub fn text(&self, selector: &str) -> String {
        self.eval(&format!(
            "document.querySelector({})?.innerText ?? ''",
            js_str(selector)
        ))
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    /// The visible texts of every element matching `selector`.
    pub fn texts(&self, selector: &str) -> Vec<String> {
        let value = self.eval(&format!(
            "[...document.querySelectorAll({})].map((e) => e.innerText)",
            js_str(selector)
        ));
        value
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until, for each of `needles`, some reported problem contains it.
    ///
    /// One failed request is reported up to twice, by the network (`HTTP
    /// 404 for …`) and by the console (`log error: Failed to load
    /// resource …`), and the two arrive independently: a caller that
    /// clears the problems afterwards waits for every report it caused.
    pub fn wait_for_problems(&self, needles: &[&str]) {
        let started = Instant::now();
        loop {
            let problems = self.problems();
            if needles
                .iter()
                .all(|n| problems.iter().any(|p| p.contains(n)))
            {
                return;
            }
            assert!(
                started.elapsed() < TIMEOUT,
                "expected problems containing {needles:?}, got {problems:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Forgets the problems reported so far.
    pub fn clear_problems(&self) {
        if let Ok(mut p) = self.problems.lock() {
            p.clear();
        }
    }

    /// Everything the page reported as a problem so far.
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Emulates the system's dark (or light) colour scheme.
    pub fn color_scheme(&self, scheme: &str) {
        self.tab
            .call_method(Emulation::SetEmulatedMedia {
                media: None,
                features: Some(vec![Emulation::MediaFeature {
                    name: "prefers-color-scheme".into(),
                    value: scheme.into(),
                }]),
            })
            .expect("an emulated colour scheme");
    }

    /// Writes a 1280×800 PNG of the page to `<repo>/screenshots/<name>.png`.
    pub fn screenshot(&self, name: &str) {
        // Let fonts and layout settle (two frames).
        self.eval(
            "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))",
        );
        let png = self
            .tab
            .capture_screenshot(
                CdpPage::CaptureScreenshotFormatOption::Png,
                None,
                None,
                true,
            )
            .expect("a screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("the screenshots folder");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot is written");
    }
}

/// `<repo>/screenshots` (ignored by git).
pub fn screenshots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("screenshots")
}

/// `text` as a JavaScript string literal.
pub fn js_str(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}
