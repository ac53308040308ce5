//! Merging an execution's metadata: the start's keys, then the keys set while it ran.
//!
//! The merge is by top-level key, as the layer records it (`xray::metadata(key, value)`, the
//! last value of a key wins): a key in `over` replaces the same key in `base` (in place, keeping
//! the order of `base`), new keys are appended. A `null` value is a value, kept like any other;
//! SQLite's `json_patch` (RFC 7396) would delete the key instead, and merge nested objects.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// The keys and raw values of a JSON object, in order; `None` if `text` is not an object.
fn entries(text: &str) -> Option<Vec<(String, Box<RawValue>)>> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(String, Box<RawValue>)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out: Self::Value = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                // A key given twice: the last value wins, where the key first appeared.
                match out.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => out.push((key, value)),
                }
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let out = de.deserialize_map(Entries).ok()?;
    de.end().ok()?;
    Some(out)
}

/// `base` with the keys of `over` set on it. When either is not a JSON object (metadata
/// written by a program that used the store directly), `over` replaces `base` whole, unless
/// `over` is not JSON at all.
pub(crate) fn merge(base: &str, over: &str) -> String {
    if serde_json::from_str::<serde::de::IgnoredAny>(over).is_err() {
        return base.to_owned();
    }
    let (Some(mut merged), Some(over_entries)) = (entries(base), entries(over)) else {
        return over.to_owned();
    };
    for (key, value) in over_entries {
        match merged.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => merged.push((key, value)),
        }
    }
    let mut out = String::with_capacity(base.len() + over.len() + 2);
    out.push('{');
    for (i, (key, value)) in merged.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Serializing a &str cannot fail.
        out.push_str(&serde_json::to_string(key).unwrap_or_else(|_| "\"\"".into()));
        out.push(':');
        out.push_str(value.get());
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::merge;

    #[test]
    fn keys_are_replaced_in_place_appended_and_nulls_are_kept() {
        assert_eq!(
            merge(
                r#"{"a": 1, "b": {"x": 1}, "c": 3}"#,
                r#"{"b": {"y": null}, "d": null}"#
            ),
            r#"{"a":1,"b":{"y": null},"c":3,"d":null}"#
        );
        assert_eq!(merge("{}", r#"{"a":null}"#), r#"{"a":null}"#);
        assert_eq!(merge(r#"{"a":null}"#, "{}"), r#"{"a":null}"#);
        assert_eq!(merge(r#"{"a":1,"a":2}"#, "{}"), r#"{"a":2}"#);
        assert_eq!(merge("{}", "5"), "5");
        assert_eq!(merge("5", "5"), "5");
        assert_eq!(merge(r#"{"a":1}"#, ""), r#"{"a":1}"#);
        assert_eq!(merge("", r#"{"k":"\u0000"}"#), r#"{"k":"\u0000"}"#);
    }
}
