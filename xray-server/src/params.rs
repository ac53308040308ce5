//! Query-string validation: every parameter typed, every error naming the parameter.
//!
//! Each route declares the parameters it accepts ([`crate::routes::Route::params`]). A parameter
//! the route does not know is a 400 that names it (so `?limt=10` is not silently ignored), a
//! parameter given twice is a 400 unless the route lets it repeat (`tag`), and an empty value
//! counts as absent (what an HTML form sends for an empty field).
//!
//! Times accept unix microseconds (`1732500000000000`) or RFC 3339 (`2026-11-25T10:00:00Z`).

use crate::error::ApiError;
use std::str::FromStr;
use uuid::Uuid;
use xray::model::Status;

/// The longest query string accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// A request's validated query parameters.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses `query`, refusing parameters that are not in `allowed` and repeats of parameters
    /// that are not in `repeatable`.
    pub fn parse(
        query: Option<&str>,
        allowed: &[&str],
        repeatable: &[&str],
    ) -> Result<Params, ApiError> {
        let query = query.unwrap_or("");
        if query.len() > MAX_QUERY_BYTES {
            return Err(ApiError::invalid(
                "query",
                format!("the query string is longer than {MAX_QUERY_BYTES} bytes"),
            ));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if !allowed.contains(&key.as_ref()) {
                let known = if allowed.is_empty() {
                    "this route takes no parameters".to_owned()
                } else {
                    format!("known parameters: {}", allowed.join(", "))
                };
                return Err(ApiError::invalid(
                    key.as_ref(),
                    format!("unknown parameter; {known}"),
                ));
            }
            if value.is_empty() {
                continue;
            }
            if !repeatable.contains(&key.as_ref()) && pairs.iter().any(|(k, _)| *k == key) {
                return Err(ApiError::invalid(key.as_ref(), "given more than once"));
            }
            pairs.push((key.into_owned(), value.into_owned()));
        }
        Ok(Params { pairs })
    }

    /// The value of `name`, if given.
    pub fn text(&self, name: &str) -> Option<String> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// Every value of a repeatable `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `name` parsed as `T`; `what` says what was expected.
    pub fn parsed<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, ApiError> {
        match self.pairs.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) => v
                .parse::<T>()
                .map(Some)
                .map_err(|_| ApiError::invalid(name, format!("expected {what}, got {v:?}"))),
        }
    }

    /// A `true`/`false` flag.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.parsed(name, "true or false")
    }

    /// A non-negative integer.
    pub fn count(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.parsed(name, "a non-negative integer")
    }

    /// The page size: 1 to `max`.
    pub fn limit(&self, max: usize) -> Result<Option<usize>, ApiError> {
        let Some(n) = self.parsed::<i64>("limit", "an integer")? else {
            return Ok(None);
        };
        if n < 1 || n as u64 > max as u64 {
            return Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {max}, got {n}"),
            ));
        }
        Ok(Some(n as usize))
    }

    /// A share between 0 and 1.
    pub fn ratio(&self, name: &str) -> Result<Option<f64>, ApiError> {
        let Some(x) = self.parsed::<f64>(name, "a number between 0 and 1")? else {
            return Ok(None);
        };
        if !(0.0..=1.0).contains(&x) {
            return Err(ApiError::invalid(
                name,
                format!("must be between 0 and 1, got {x}"),
            ));
        }
        Ok(Some(x))
    }

    /// A UUID.
    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, ApiError> {
        self.parsed(name, "a UUID")
    }

    /// A UUID that must be given.
    pub fn required_uuid(&self, name: &str) -> Result<Uuid, ApiError> {
        self.uuid(name)?
            .ok_or_else(|| ApiError::invalid(name, "is required (a UUID)"))
    }

    /// A run or step status.
    pub fn status(&self, name: &str) -> Result<Option<Status>, ApiError> {
        match self.text(name) {
            None => Ok(None),
            Some(s) => Status::parse(&s).map(Some).ok_or_else(|| {
                ApiError::invalid(
                    name,
                    format!("expected running, ok, error or lost, got {s:?}"),
                )
            }),
        }
    }

    /// A time: unix microseconds or RFC 3339.
    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.text(name) else {
            return Ok(None);
        };
        if let Ok(us) = v.parse::<i64>() {
            return Ok(Some(us));
        }
        let at = humantime::parse_rfc3339_weak(&v).map_err(|_| {
            ApiError::invalid(
                name,
                format!("expected unix microseconds or an RFC 3339 time, got {v:?}"),
            )
        })?;
        let us = match at.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
        };
        Ok(Some(us))
    }

    /// Free text, at most 200 characters.
    pub fn search(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.text(name) {
            Some(s) if s.chars().count() > 200 => {
                Err(ApiError::invalid(name, "must be at most 200 characters"))
            }
            other => Ok(other),
        }
    }
}

/// A path segment that must be a UUID; otherwise a 404 naming the segment (an id that cannot
/// exist is not found, like one that does not exist).
pub fn path_uuid(segment: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(segment)
        .map_err(|_| ApiError::not_found(what, format!("no {what} {segment:?} (ids are UUIDs)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_repeated_parameters_name_themselves() {
        let err = Params::parse(Some("limt=5"), &["limit"], &[]).expect_err("refused");
        assert_eq!(err.field.as_deref(), Some("limt"));
        let err = Params::parse(Some("limit=5&limit=6"), &["limit"], &[]).expect_err("refused");
        assert_eq!(err.field.as_deref(), Some("limit"));
        let ok = Params::parse(Some("tag=a&tag=b&limit="), &["tag", "limit"], &["tag"])
            .expect("accepted");
        assert_eq!(ok.all("tag"), ["a", "b"]);
        assert_eq!(ok.limit(1000).expect("accepted"), None);
    }

    #[test]
    fn times_take_microseconds_or_rfc3339() {
        let p = Params::parse(
            Some("since=2026-11-25T00:00:00Z&until=5"),
            &["since", "until"],
            &[],
        )
        .expect("accepted");
        assert_eq!(
            p.time("since").expect("accepted"),
            Some(1_795_564_800_000_000)
        );
        assert_eq!(p.time("until").expect("accepted"), Some(5));
        let bad = Params::parse(Some("since=yesterday"), &["since"], &[]).expect("accepted");
        assert_eq!(
            bad.time("since").expect_err("refused").field.as_deref(),
            Some("since")
        );
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        for q in [
            "limit=0",
            "limit=-1",
            "limit=1001",
            "limit=99999999999999999999",
            "limit=x",
        ] {
            let p = Params::parse(Some(q), &["limit"], &[]).expect("accepted");
            assert_eq!(
                p.limit(1000).expect_err("refused").field.as_deref(),
                Some("limit"),
                "{q}"
            );
        }
    }
}
