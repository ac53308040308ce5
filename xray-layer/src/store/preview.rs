//! A run's input (and output) in a few fields, for lists of runs.
//!
//! The runs of one pipeline share a name; what tells them apart is what each was given (the
//! seller's product, the query). [`json_preview`] turns the start of a run's input JSON into
//! its first values, each with its path:
//!
//! ```text
//! {"config":{"scope":"exact"},"seller":{"asin":"B0QUBI0001","title":"Qubi laptop stand"}}
//! config.scope = exact, seller.asin = B0QUBI0001, seller.title = Qubi laptop stand
//! ```
//!
//! A list shows the fields whose values differ between the runs it holds first (the viewer
//! does): most of a pipeline's configuration is the same from run to run, and `serde_json`'s
//! `json!` sorts keys, so the seller may well come after it.
//!
//! The list queries read only a prefix of the stored input ([`INPUT_PREFIX_CHARS`]), which may
//! cut the document anywhere, so the scan is lenient: it never fails, and a string the prefix
//! cuts ends its preview with "…" (a number it cuts is left out). An input the payload cap cut
//! (`{"$xray_truncated": true, "original_bytes": N, "value": …}`) is previewed as its value.

/// Characters of a run's stored input that the list queries read for its preview.
pub(crate) const INPUT_PREFIX_CHARS: usize = 1000;

/// Fields in a preview, at most.
pub const MAX_PREVIEW_FIELDS: usize = 24;

/// Characters of one value in a preview, at most (the "…" that ends a longer one included).
pub const MAX_PREVIEW_VALUE_CHARS: usize = 80;

/// Characters of one path in a preview, at most (the "…" that ends a longer one included).
pub const MAX_PREVIEW_PATH_CHARS: usize = 120;

/// The scalar values of `json` in document order, each with its path (`seller.title`,
/// `items[0].id`; empty for a document that is a single value). An array of scalars is one
/// field, its values joined by ", ". Nulls are left out.
pub(crate) fn json_preview(json: &str) -> Vec<(String, String)> {
    let mut scan = Scan {
        chars: json.chars().peekable(),
        fields: Vec::new(),
    };
    scan.run();
    let mut fields = scan.fields;
    if fields
        .first()
        .is_some_and(|(p, v)| p == TRUNCATED && v == "true")
    {
        // The payload cap's wrapper: the value it kept is what the run was given.
        fields.retain(|(p, _)| p != TRUNCATED && p != "original_bytes");
        for (path, _) in &mut fields {
            if let Some(rest) = path.strip_prefix("value") {
                *path = rest.strip_prefix('.').unwrap_or(rest).to_owned();
            }
        }
    }
    fields
}

/// The key that marks a payload the cap cut.
const TRUNCATED: &str = "$xray_truncated";

/// A container being scanned, with its path.
enum Open {
    /// An object; `key` is the last key read in it.
    Object { path: String, key: Option<String> },
    /// An array; `index` is the element being read, `scalars` the field its scalar values are
    /// joined into.
    Array {
        path: String,
        index: usize,
        scalars: Option<usize>,
    },
}

struct Scan<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    fields: Vec<(String, String)>,
}

impl Scan<'_> {
    fn run(&mut self) {
        let mut open: Vec<Open> = Vec::new();
        // In an object, the next string is a key (after `{` or `,`).
        let mut key_next = false;
        while let Some(c) = self.chars.next() {
            if self.fields.len() >= MAX_PREVIEW_FIELDS {
                return;
            }
            match c {
                '{' => {
                    let path = path_of_value(&mut open);
                    open.push(Open::Object { path, key: None });
                    key_next = true;
                }
                '[' => {
                    let path = path_of_value(&mut open);
                    open.push(Open::Array {
                        path,
                        index: 0,
                        scalars: None,
                    });
                    key_next = false;
                }
                '}' | ']' => {
                    open.pop();
                    key_next = false;
                }
                ',' => match open.last_mut() {
                    Some(Open::Object { .. }) => key_next = true,
                    Some(Open::Array { index, .. }) => *index += 1,
                    None => {}
                },
                ':' => key_next = false,
                '"' => {
                    let (text, whole) = self.string();
                    if key_next {
                        if !whole {
                            return; // cut inside a key
                        }
                        if let Some(Open::Object { key, .. }) = open.last_mut() {
                            *key = Some(text);
                        }
                        key_next = false;
                    } else if whole {
                        self.value(&mut open, text);
                    } else {
                        // Cut inside a string: what there is of it, and that there was more.
                        if !text.trim().is_empty() {
                            self.value(&mut open, format!("{}…", text.trim_end()));
                        }
                        return;
                    }
                }
                c if c.is_whitespace() => {}
                c => {
                    let mut literal = String::from(c);
                    while let Some(&next) = self.chars.peek() {
                        if matches!(next, ',' | '}' | ']' | ':') || next.is_whitespace() {
                            break;
                        }
                        literal.push(next);
                        self.chars.next();
                    }
                    if self.chars.peek().is_none() && !open.is_empty() {
                        return; // cut inside a number, perhaps
                    }
                    if literal != "null" {
                        self.value(&mut open, literal);
                    }
                }
            }
        }
    }

    /// Adds a scalar value.
    fn value(&mut self, open: &mut [Open], text: String) {
        let text = cut(&text, MAX_PREVIEW_VALUE_CHARS);
        match open.last_mut() {
            Some(Open::Array {
                scalars: Some(at), ..
            }) => {
                if let Some((_, joined)) = self.fields.get_mut(*at) {
                    if !joined.ends_with('…') {
                        joined.push_str(", ");
                        joined.push_str(&text);
                        *joined = cut(joined, MAX_PREVIEW_VALUE_CHARS);
                    }
                }
            }
            Some(Open::Array { path, scalars, .. }) => {
                *scalars = Some(self.fields.len());
                self.fields.push((cut(path, MAX_PREVIEW_PATH_CHARS), text));
            }
            Some(Open::Object { .. }) | None => {
                let path = path_of_value(open);
                self.fields.push((cut(&path, MAX_PREVIEW_PATH_CHARS), text));
            }
        }
    }

    /// The rest of a string whose opening quote was read, unescaped, and whether it was whole
    /// (the text may end first).
    fn string(&mut self) -> (String, bool) {
        let mut out = String::new();
        loop {
            let Some(c) = self.chars.next() else {
                return (out, false);
            };
            match c {
                '"' => return (out, true),
                '\\' => match self.chars.next() {
                    None => return (out, false),
                    Some('n' | 'r' | 't') => out.push(' '),
                    Some('b' | 'f') => {}
                    Some('u') => match hex4(&mut self.chars) {
                        None => return (out, false),
                        Some(high @ 0xD800..=0xDBFF) => {
                            // A pair of escapes for one character beyond the first plane.
                            let mut ahead = self.chars.clone();
                            let low = (ahead.next() == Some('\\') && ahead.next() == Some('u'))
                                .then(|| hex4(&mut ahead))
                                .flatten()
                                .filter(|low| (0xDC00..=0xDFFF).contains(low));
                            match low {
                                Some(low) => {
                                    self.chars = ahead;
                                    let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                                    out.push(
                                        char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER),
                                    );
                                }
                                None => out.push(char::REPLACEMENT_CHARACTER),
                            }
                        }
                        Some(code) => {
                            out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER))
                        }
                    },
                    Some(other) => out.push(other),
                },
                c => out.push(c),
            }
        }
    }
}

/// The code of a `\u` escape's four hex digits; `None` if the text ends first (or they are not
/// hex: a replacement character is then as good as anything).
fn hex4(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<u32> {
    let hex: String = (0..4).filter_map(|_| chars.next()).collect();
    if hex.chars().count() < 4 {
        return None;
    }
    Some(u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD))
}

/// The path of the value about to start, in the innermost open container (an object's key is
/// taken: it names one value).
fn path_of_value(open: &mut [Open]) -> String {
    match open.last_mut() {
        Some(Open::Object { path, key }) => {
            let key = key.take().unwrap_or_default();
            if path.is_empty() {
                key
            } else {
                format!("{path}.{key}")
            }
        }
        Some(Open::Array { path, index, .. }) => format!("{path}[{index}]"),
        None => String::new(),
    }
}

/// `text` with whitespace runs folded, cut to `max` characters, the last one an ellipsis when
/// it was cut.
fn cut(text: &str, max: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        return text;
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Vec<(String, String)> {
        json_preview(json)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|&(p, v)| (p.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn nested_values_come_with_their_paths_in_document_order() {
        let json = r#"{"config":{"scope":"exact","max":50},"note":null,"seller":{"asin":"B0QUBI0001","title":"Qubi laptop stand","price":29.99,"prime":true}}"#;
        assert_eq!(
            fields(json),
            pairs(&[
                ("config.scope", "exact"),
                ("config.max", "50"),
                ("seller.asin", "B0QUBI0001"),
                ("seller.title", "Qubi laptop stand"),
                ("seller.price", "29.99"),
                ("seller.prime", "true"),
            ])
        );
    }

    #[test]
    fn an_array_of_scalars_is_one_field() {
        let json = r#"{"keywords":["laptop stand","aluminium"],"limit":3,"ids":[1,2],"none":[]}"#;
        assert_eq!(
            fields(json),
            pairs(&[
                ("keywords", "laptop stand, aluminium"),
                ("limit", "3"),
                ("ids", "1, 2"),
            ])
        );
    }

    #[test]
    fn objects_in_arrays_are_indexed() {
        let json = r#"[{"id":"a","n":1},{"id":"b","tags":["x","y"]}]"#;
        assert_eq!(
            fields(json),
            pairs(&[
                ("[0].id", "a"),
                ("[0].n", "1"),
                ("[1].id", "b"),
                ("[1].tags", "x, y"),
            ])
        );
    }

    #[test]
    fn a_scalar_input_is_one_field_without_a_path() {
        assert_eq!(fields(r#""just text""#), pairs(&[("", "just text")]));
        assert_eq!(fields("42"), pairs(&[("", "42")]));
    }

    #[test]
    fn nothing_to_show_is_empty() {
        assert!(fields("").is_empty());
        assert!(fields("{}").is_empty());
        assert!(fields(r#"{"a":null,"b":[]}"#).is_empty());
    }

    #[test]
    fn escapes_are_decoded_and_whitespace_folded() {
        let json = r#"{"title":"14\" stand\n\u00e9l\u00e9gant","path":"a\\b","we\"ird":1}"#;
        assert_eq!(
            fields(json),
            pairs(&[
                ("title", r#"14" stand élégant"#),
                ("path", r"a\b"),
                (r#"we"ird"#, "1"),
            ])
        );
    }

    #[test]
    fn a_document_cut_anywhere_gives_what_it_holds_and_marks_a_cut_string() {
        let json = r#"{"seller":{"asin":"B0QUBI0001","title":"Qubi laptop stand","price":29.99}}"#;
        let whole = fields(json);
        for end in 0..json.len() {
            let got = fields(&json[..end]);
            assert!(got.len() <= whole.len(), "{end}: {got:?}");
            for (i, (field, expected)) in got.iter().zip(&whole).enumerate() {
                if field != expected {
                    // Only the last, cut inside its string: its start, then "…".
                    let start = field.1.strip_suffix('…').unwrap_or("none");
                    assert!(
                        i == got.len() - 1
                            && field.0 == expected.0
                            && expected.1.starts_with(start),
                        "cut at {end}: {got:?}"
                    );
                }
            }
        }
        let cut_in_title = json.find("Qubi").unwrap_or(0) + 4;
        assert_eq!(
            fields(&json[..cut_in_title]),
            pairs(&[("seller.asin", "B0QUBI0001"), ("seller.title", "Qubi…")])
        );
        // A long prompt the prefix cuts still shows its start.
        let prompt = format!(r#"{{"prompt":"{}"#, "word ".repeat(300));
        let got = fields(&prompt);
        assert_eq!(got.len(), 1);
        assert!(got[0].1.starts_with("word word ") && got[0].1.ends_with('…'));
    }

    #[test]
    fn a_payload_the_cap_cut_is_previewed_as_its_value() {
        let json = r#"{"$xray_truncated":true,"original_bytes":912345,"value":{"seller":{"title":"Qubi"},"items":[1,2]}}"#;
        assert_eq!(
            fields(json),
            pairs(&[("seller.title", "Qubi"), ("items", "1, 2")])
        );
    }

    #[test]
    fn escaped_pairs_beyond_the_first_plane_are_one_character() {
        let json = r#"{"mood":"\ud83d\ude00 ok","lone":"\ud83d!","bad":"\uzzzz"}"#;
        assert_eq!(
            fields(json),
            pairs(&[
                ("mood", "😀 ok"),
                ("lone", "\u{FFFD}!"),
                ("bad", "\u{FFFD}")
            ])
        );
    }

    #[test]
    fn long_values_and_many_fields_are_cut() {
        let long = "x".repeat(500);
        let json = format!(
            r#"{{"a":"{long}","b":[{}]}}"#,
            vec!["\"word\""; 100].join(",")
        );
        let got = fields(&json);
        assert_eq!(got[0].1.chars().count(), MAX_PREVIEW_VALUE_CHARS);
        assert!(got[0].1.ends_with('…'));
        assert!(got[1].1.starts_with("word, word, "));
        assert!(got[1].1.ends_with('…'));
        assert!(got[1].1.chars().count() <= MAX_PREVIEW_VALUE_CHARS);
        let many: Vec<String> = (0..100).map(|i| format!(r#""k{i}":{i}"#)).collect();
        let got = fields(&format!("{{{}}}", many.join(",")));
        assert_eq!(got.len(), MAX_PREVIEW_FIELDS);
        assert_eq!(got[23], ("k23".to_owned(), "23".to_owned()));
        let key = "k".repeat(300);
        let got = fields(&format!(r#"{{"{key}":{{"{key}":1}}}}"#));
        assert_eq!(got[0].0.chars().count(), MAX_PREVIEW_PATH_CHARS);
        assert!(got[0].0.ends_with('…'));
    }
}
