//! [`Builder::with_default_env`]: the `XRAY_*` variables (the table is on [the builder's
//! module](super)), each checked as it is read; a value X-Ray cannot use is kept as the
//! [`Error::Env`] that `build()` returns, naming the variable.

use super::*;

impl Builder {
    /// Reads the `XRAY_*` variables (see the table on [`Builder`]). A variable that is set
    /// overrides what was configured before this call.
    pub fn with_default_env(self) -> Self {
        self.with_env(|var| std::env::var(var).ok())
    }

    /// [`with_default_env`](Self::with_default_env) with another source of variables.
    pub fn with_env(self, get: impl Fn(&str) -> Option<String>) -> Self {
        fn parse<T: std::str::FromStr>(
            var: &'static str,
            value: &str,
            expected: &'static str,
            ok: impl Fn(&T) -> bool,
        ) -> Result<T, Error> {
            value
                .trim()
                .parse::<T>()
                .ok()
                .filter(ok)
                .ok_or_else(|| Error::Env {
                    var,
                    value: value.to_owned(),
                    expected,
                })
        }
        let apply = |b: Builder| -> Result<Builder, Error> {
            let mut b = b;
            if let Some(v) = get("XRAY_DB") {
                b = match v.trim() {
                    ":memory:" => b.memory(),
                    "" => {
                        return Err(Error::Env {
                            var: "XRAY_DB",
                            value: v,
                            expected: "a file path, :memory: or a postgres:// URL",
                        })
                    }
                    url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                        #[cfg(feature = "postgres")]
                        {
                            b.postgres(url)
                        }
                        #[cfg(not(feature = "postgres"))]
                        return Err(Error::Env {
                            var: "XRAY_DB",
                            value: crate::store::redact_password(url),
                            expected: "a file path or :memory: (this build of xray has no `postgres` feature)",
                        });
                    }
                    path => b.sqlite(path),
                };
            }
            if let Some(v) = get("XRAY_ENDPOINT").filter(|v| !v.trim().is_empty()) {
                b.store = StoreChoice::Remote {
                    endpoint: v.trim().to_owned(),
                    token: None,
                    spool: None,
                };
            }
            if let StoreChoice::Remote { token, spool, .. } = &mut b.store {
                if let Some(v) = get("XRAY_TOKEN").filter(|v| !v.is_empty()) {
                    *token = Some(v);
                }
                if let Some(v) = get("XRAY_SPOOL").filter(|v| !v.trim().is_empty()) {
                    *spool = Some(PathBuf::from(v.trim()));
                }
            }
            if let Some(v) = get("XRAY_QUEUE_CAPACITY") {
                b = b.queue_capacity(parse(
                    "XRAY_QUEUE_CAPACITY",
                    &v,
                    "a number of records ≥ 1",
                    |n: &usize| *n >= 1,
                )?);
            }
            if let Some(v) = get("XRAY_FLUSH_INTERVAL_MS") {
                let ms: u64 = parse(
                    "XRAY_FLUSH_INTERVAL_MS",
                    &v,
                    "milliseconds ≥ 1",
                    |n: &u64| *n >= 1,
                )?;
                b = b.flush_interval(Duration::from_millis(ms));
            }
            if let Some(v) = get("XRAY_BACKPRESSURE") {
                b = b.backpressure(match v.trim() {
                    "drop" => Backpressure::Drop,
                    "block" => Backpressure::Block,
                    _ => {
                        return Err(Error::Env {
                            var: "XRAY_BACKPRESSURE",
                            value: v,
                            expected: "drop or block",
                        })
                    }
                });
            }
            if let Some(v) = get("XRAY_CAPTURE") {
                let capture = Capture::parse(&v).ok_or_else(|| Error::Env {
                    var: "XRAY_CAPTURE",
                    value: v.clone(),
                    expected: "all, summary, or a number of rows per step",
                })?;
                b = b.capture(capture);
            }
            if let Some(v) = get("XRAY_REDACT") {
                b = b.redact(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
            if let Some(v) = get("XRAY_MAX_PAYLOAD_BYTES") {
                b = b.max_payload_bytes(Some(parse(
                    "XRAY_MAX_PAYLOAD_BYTES",
                    &v,
                    "bytes ≥ 64",
                    |n: &usize| *n >= 64,
                )?));
            }
            if let Some(v) = get("XRAY_MAX_LOGS_PER_STEP") {
                b = b.max_logs_per_step(parse(
                    "XRAY_MAX_LOGS_PER_STEP",
                    &v,
                    "a number of log lines",
                    |_: &usize| true,
                )?);
            }
            if let Some(v) = get("XRAY_SERVICE") {
                b = b.service(v);
            }
            if let Some(v) = get("XRAY_WRITER_NICE") {
                b = b.writer_nice(parse(
                    "XRAY_WRITER_NICE",
                    &v,
                    "nice levels from 0 to 19",
                    |n: &u8| *n <= 19,
                )?);
            }
            if let Some(v) = get("XRAY_SAMPLE") {
                b = b.sample(parse(
                    "XRAY_SAMPLE",
                    &v,
                    "a share of executions from 0 to 1 (0.1 records one run in ten)",
                    |share: &f64| (0.0..=1.0).contains(share),
                )?);
            }
            // Headers apart from the endpoint: the key in the environment, the URL in code.
            if let Some(v) = get("XRAY_OTLP_HEADERS") {
                let headers = parse_otlp_headers(&v).ok_or(Error::Env {
                    var: "XRAY_OTLP_HEADERS",
                    value: "(not shown: it may hold a key)".to_owned(),
                    expected: "name=value pairs separated by commas, values percent-encoded",
                })?;
                b.otlp_headers.extend(headers);
            }
            if let Some(endpoint) = get("XRAY_OTLP_ENDPOINT").filter(|v| !v.trim().is_empty()) {
                if cfg!(not(feature = "otlp")) {
                    return Err(Error::Env {
                        var: "XRAY_OTLP_ENDPOINT",
                        value: endpoint,
                        expected: "no endpoint: this build of xray has no `otlp` feature",
                    });
                }
                b.otlp_endpoint = Some(endpoint.trim().to_owned());
            }
            Ok(b)
        };
        match apply(self) {
            Ok(b) => b,
            Err(e) => Builder {
                env_error: Some(e),
                ..Builder::default()
            },
        }
    }
}

/// `XRAY_OTLP_HEADERS` (`name=value,name=value`, values percent-encoded as in
/// `OTEL_EXPORTER_OTLP_HEADERS`: `authorization=Basic%20…`) split into pairs, with or without the
/// `otlp` feature, so a malformed list is named either way. Names and values are checked by
/// `build()`.
fn parse_otlp_headers(text: &str) -> Option<Vec<(String, String)>> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .ok()?;
            Some((name.trim().to_owned(), value.into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_are_validated_and_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |var: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| v.to_string())
            }
        };
        let b = layer().with_env(env(&[("XRAY_QUEUE_CAPACITY", "lots")]));
        match b.build() {
            Err(Error::Env { var, .. }) => assert_eq!(var, "XRAY_QUEUE_CAPACITY"),
            other => panic!("expected an env error, got {other:?}"),
        }
        let b = layer().with_env(env(&[
            ("XRAY_DB", ":memory:"),
            ("XRAY_CAPTURE", "summary"),
            ("XRAY_BACKPRESSURE", "block"),
            ("XRAY_QUEUE_CAPACITY", "8"),
        ]));
        assert_eq!(b.capture, Capture::Summary);
        assert_eq!(b.backpressure, Backpressure::Block);
        assert_eq!(b.queue_capacity, 8);
        assert!(b.build().is_ok());
        for (value, ok) in [("0", Some(0)), ("19", Some(19)), ("20", None), ("-1", None)] {
            let b = layer()
                .memory()
                .with_env(move |var: &str| (var == "XRAY_WRITER_NICE").then(|| value.to_owned()));
            let nice = b.writer_nice;
            match (ok, b.build()) {
                (Some(n), Ok(_)) => assert_eq!(nice, n),
                (None, Err(Error::Env { var, .. })) => assert_eq!(var, "XRAY_WRITER_NICE"),
                (ok, other) => panic!("XRAY_WRITER_NICE={value}: expected {ok:?}, got {other:?}"),
            }
        }
    }
}
