//! A run's input in one line, for lists of runs.
//!
//! The runs of one pipeline share a name; what tells them apart is what each was given (the
//! seller's product, the query). [`input_preview`] turns the start of a run's input JSON into
//! one line of its values, each with its key:
//!
//! ```text
//! {"seller":{"asin":"B0QUBI0001","title":"Qubi laptop stand","price":29.99},"config":{..}}
//! asin: B0QUBI0001 · title: Qubi laptop stand · price: 29.99 · …
//! ```
//!
//! The list queries read only a prefix of the stored input ([`INPUT_PREFIX_CHARS`]), which may
//! cut the document anywhere, so the scan is lenient: it never fails, and says with "…" that
//! there was more.

/// Characters of a run's stored input that the list queries read for its preview.
pub(crate) const INPUT_PREFIX_CHARS: usize = 1000;

/// Characters of a preview, at most (the "…" that ends a longer one included).
pub const MAX_PREVIEW_CHARS: usize = 160;

/// Characters of one value in a preview, at most (the "…" included).
const MAX_VALUE_CHARS: usize = 60;

/// What separates two values.
const SEPARATOR: &str = " · ";

/// One line of `json`'s scalar values in document order, each after the key it belongs to; an
/// array's scalars follow its key, joined by ", ". Nulls are left out. `None` when there is no
/// value to show.
pub(crate) fn input_preview(json: &str) -> Option<String> {
    let mut scan = Scan {
        chars: json.chars().peekable(),
        line: Line::default(),
    };
    let complete = scan.run();
    scan.line.finish(complete)
}

/// A container being scanned.
enum Open {
    /// An object; `key` is the last key read in it.
    Object { key: Option<String> },
    /// An array, with the key it is the value of; `shown` once one of its values is in the line.
    Array { key: Option<String>, shown: bool },
}

struct Scan<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: Line,
}

impl Scan<'_> {
    /// Scans to the end; `true` when the document was whole (every container closed).
    fn run(&mut self) -> bool {
        let mut open: Vec<Open> = Vec::new();
        // In an object, the next string is a key (after `{` or `,`).
        let mut key_next = false;
        while let Some(c) = self.chars.next() {
            if self.line.full {
                return false;
            }
            match c {
                '{' => {
                    // The object's own key is not shown: its values carry theirs.
                    Self::key_of_value(&mut open);
                    open.push(Open::Object { key: None });
                    key_next = true;
                }
                '[' => {
                    let key = Self::key_of_value(&mut open);
                    open.push(Open::Array { key, shown: false });
                    key_next = false;
                }
                '}' | ']' => {
                    open.pop();
                    key_next = false;
                }
                ',' => key_next = matches!(open.last(), Some(Open::Object { .. })),
                ':' => key_next = false,
                '"' => {
                    let Some(text) = self.string() else {
                        return false; // cut inside a string
                    };
                    if key_next {
                        if let Some(Open::Object { key }) = open.last_mut() {
                            *key = Some(text);
                        }
                        key_next = false;
                    } else {
                        self.value(&mut open, text);
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
                        return false; // cut inside a number, perhaps
                    }
                    if literal != "null" {
                        self.value(&mut open, literal);
                    }
                }
            }
        }
        open.is_empty()
    }

    /// The key the value about to start belongs to (taken: an object's key serves one value).
    fn key_of_value(open: &mut [Open]) -> Option<String> {
        match open.last_mut() {
            Some(Open::Object { key }) => key.take(),
            Some(Open::Array { key, .. }) => key.clone(),
            None => None,
        }
    }

    /// Adds a scalar value to the line.
    fn value(&mut self, open: &mut [Open], text: String) {
        match open.last_mut() {
            Some(Open::Array { shown: true, .. }) => self.line.push(", ", None, &text),
            Some(Open::Array { key, shown }) => {
                *shown = true;
                let key = key.clone();
                self.line.push(SEPARATOR, key.as_deref(), &text);
            }
            Some(Open::Object { key }) => {
                let key = key.take();
                self.line.push(SEPARATOR, key.as_deref(), &text);
            }
            None => self.line.push(SEPARATOR, None, &text),
        }
    }

    /// The rest of a string whose opening quote was read, unescaped; `None` if the text ends
    /// first.
    fn string(&mut self) -> Option<String> {
        let mut out = String::new();
        loop {
            match self.chars.next()? {
                '"' => return Some(out),
                '\\' => match self.chars.next()? {
                    'n' | 'r' | 't' => out.push(' '),
                    'b' | 'f' => {}
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| self.chars.next()).collect();
                        let code = u32::from_str_radix(&hex, 16).ok()?;
                        out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
    }
}

/// The preview being built.
#[derive(Default)]
struct Line {
    text: String,
    chars: usize,
    /// No more fits.
    full: bool,
}

impl Line {
    fn push(&mut self, separator: &str, key: Option<&str>, value: &str) {
        if self.full {
            return;
        }
        let mut part = String::new();
        if !self.text.is_empty() {
            part.push_str(separator);
        }
        if let Some(key) = key {
            part.push_str(key);
            part.push_str(": ");
        }
        part.push_str(&cut(value, MAX_VALUE_CHARS));
        let len = part.chars().count();
        // Room is kept for the closing " · …".
        if self.chars + len > MAX_PREVIEW_CHARS - 4 {
            self.full = true;
            return;
        }
        self.chars += len;
        self.text.push_str(&part);
    }

    fn finish(self, complete: bool) -> Option<String> {
        if self.text.is_empty() {
            return None;
        }
        let mut text = self.text;
        if self.full || !complete {
            text.push_str(" …");
        }
        Some(text)
    }
}

/// `text` cut to `max` characters, the last one an ellipsis when it was cut; whitespace runs
/// become one space.
fn cut(text: &str, max: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let text = words.join(" ");
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

    #[test]
    fn nested_values_follow_their_keys_in_document_order() {
        let json = r#"{"seller":{"asin":"B0QUBI0001","title":"Qubi laptop stand","price":29.99,"prime":true},"note":null,"config":{"max":50}}"#;
        assert_eq!(
            input_preview(json).as_deref(),
            Some("asin: B0QUBI0001 · title: Qubi laptop stand · price: 29.99 · prime: true · max: 50")
        );
    }

    #[test]
    fn an_array_of_scalars_is_one_entry() {
        let json = r#"{"keywords":["laptop stand","aluminium"],"limit":3,"ids":[1,2]}"#;
        assert_eq!(
            input_preview(json).as_deref(),
            Some("keywords: laptop stand, aluminium · limit: 3 · ids: 1, 2")
        );
    }

    #[test]
    fn arrays_of_objects_show_each_objects_values() {
        let json = r#"[{"id":"a","n":1},{"id":"b","n":2}]"#;
        assert_eq!(
            input_preview(json).as_deref(),
            Some("id: a · n: 1 · id: b · n: 2")
        );
    }

    #[test]
    fn a_scalar_input_is_itself() {
        assert_eq!(
            input_preview(r#""just text""#).as_deref(),
            Some("just text")
        );
        assert_eq!(input_preview("42").as_deref(), Some("42"));
    }

    #[test]
    fn nothing_to_show_is_none() {
        assert_eq!(input_preview(""), None);
        assert_eq!(input_preview("{}"), None);
        assert_eq!(input_preview(r#"{"a":null,"b":[]}"#), None);
    }

    #[test]
    fn escapes_are_decoded_and_whitespace_folded() {
        let json = r#"{"title":"14\" stand\n\u00e9l\u00e9gant","path":"a\\b"}"#;
        assert_eq!(
            input_preview(json).as_deref(),
            Some(r#"title: 14" stand élégant · path: a\b"#)
        );
    }

    #[test]
    fn a_document_cut_anywhere_gives_what_it_has_and_says_there_was_more() {
        let json = r#"{"seller":{"asin":"B0QUBI0001","title":"Qubi laptop stand","price":29.99}}"#;
        for end in 0..json.len() {
            let preview = input_preview(&json[..end]);
            if let Some(p) = &preview {
                assert!(p.ends_with(" …"), "{end}: {p}");
                assert!(p.starts_with("asin: B0QUBI0001"), "{end}: {p}");
            }
        }
        assert_eq!(
            input_preview(&json[..json.find("Qubi").unwrap_or(0) + 2]).as_deref(),
            Some("asin: B0QUBI0001 …")
        );
    }

    #[test]
    fn long_values_and_long_lines_are_cut_with_an_ellipsis() {
        let long = "x".repeat(500);
        let json = format!(r#"{{"a":"{long}","b":"{long}","c":"{long}","d":"{long}"}}"#);
        let preview = input_preview(&json).unwrap_or_default();
        assert!(preview.chars().count() <= MAX_PREVIEW_CHARS, "{preview}");
        assert!(preview.starts_with(&format!("a: {}…", "x".repeat(MAX_VALUE_CHARS - 1))));
        assert!(preview.ends_with(" …"), "{preview}");
        assert!(!preview.contains("d: "), "{preview}");
    }
}
