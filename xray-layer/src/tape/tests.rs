//! A tape replays to the JSON serde_json writes for the same value, byte for byte: for every
//! shape of serde's data model, for the errors serde_json raises, and for tapes that are cut
//! or corrupt (which give a string that says so, never a panic).

use super::*;
use serde::ser::{SerializeMap, Serializer};
use std::collections::{BTreeMap, HashMap};

/// What a value is recorded as (replayed) and what X-Ray wrote before tapes (serde_json at
/// once): the same text.
#[track_caller]
fn same<T: Serialize + ?Sized>(value: &T) {
    assert_eq!(
        Tape::of(value).to_json().as_str(),
        Json::from_serialize(value).as_str()
    );
}

#[derive(Serialize)]
struct Query {
    asin: String,
    title: String,
    price: f64,
    min_rating: f32,
    max_results: u32,
    keywords: Vec<String>,
    seller: Option<Seller>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(rename = "type")]
    kind: Kind,
}

#[derive(Serialize)]
struct Seller(u64);

#[derive(Serialize)]
struct Marker;

#[derive(Serialize)]
struct Pair(i8, &'static str);

#[derive(Serialize)]
enum Kind {
    Filter,
    Rank(u16),
    Window(i32, i32),
    Judge {
        model: &'static str,
        temperature: f64,
    },
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Tagged {
    Price { min: f64, max: f64 },
    Empty,
}

#[derive(Serialize)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    Score(f64),
}

#[derive(Serialize)]
#[serde(untagged)]
enum Untagged {
    Number(i64),
    Text(String),
}

#[derive(Serialize)]
struct Flattened {
    id: &'static str,
    #[serde(flatten)]
    extra: BTreeMap<String, i32>,
}

/// A step's typical argument: strings, numbers, a list, an option, an enum.
fn query() -> Query {
    Query {
        asin: "B0REF00042".into(),
        title: "Adjustable aluminium laptop stand".into(),
        price: 29.99,
        min_rating: 3.8,
        max_results: 50,
        keywords: vec!["laptop stand".into(), "aluminium".into()],
        seller: Some(Seller(7)),
        note: None,
        kind: Kind::Judge {
            model: "gpt-4o",
            temperature: 0.2,
        },
    }
}

#[test]
fn structs_options_and_enums_replay_to_serde_jsons_text() {
    same(&query());
    same(&Kind::Filter);
    same(&Kind::Rank(3));
    same(&Kind::Window(-1, 1));
    same(&Marker);
    same(&Pair(-8, "x"));
    same(&Tagged::Price {
        min: 14.99,
        max: 80.0,
    });
    same(&Tagged::Empty);
    same(&Adjacent::Score(0.5));
    same(&[Untagged::Number(-3), Untagged::Text("t".into())]);
    same(&Flattened {
        id: "a",
        extra: BTreeMap::from([("b".into(), 1), ("c".into(), 2)]),
    });
    same(&());
    same(&None::<u8>);
    same(&Some(Some(1u8)));
    same(&((), (1u8, "two", 3.0f64), [true, false]));
    same(&Vec::<u8>::new());
    same(&HashMap::<String, u8>::new());
}

#[test]
fn numbers_keep_their_width_and_their_text() {
    same(&[i64::MIN, -1, 0, i64::MAX]);
    same(&[u64::MAX, 0]);
    same(&[i8::MIN as i64, i16::MIN as i64, i32::MIN as i64]);
    same(&(i8::MIN, i16::MAX, i32::MIN, u8::MAX, u16::MAX, u32::MAX));
    same(&[i128::MIN, i128::MAX]);
    same(&[u128::MAX]);
    same(&[0.1f32, 1.0e-7, f32::MAX, f32::MIN_POSITIVE, -0.0]);
    same(&[0.1f64, 1e300, -0.0, 5e-324, 29.99]);
    // serde_json writes non-finite numbers as null.
    same(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
    same(&[f32::NAN]);
    same(&[255u64, 256, 65_535, u32::MAX as u64, u32::MAX as u64 + 1]);
    same(&[
        -128i64,
        -129,
        127,
        128,
        i32::MIN as i64 - 1,
        i32::MAX as i64 + 1,
    ]);
    // Small numbers take few bytes: a list of bytes is no bigger than twice its JSON.
    let bytes = vec![200u8; 1_000];
    assert!(
        Tape::of(&bytes).as_bytes().len()
            <= 2 * serde_json::to_string(&bytes).map_or(0, |j| j.len())
    );
}

#[test]
fn strings_chars_and_bytes_are_escaped_as_serde_json_escapes_them() {
    same("plain");
    same("");
    same("quote \" backslash \\ slash / tab \t newline \n nul \0 bell \x07 del \x7f");
    same("unicode: café, 日本語, emoji 🧪, line separator \u{2028}");
    same(&['a', '"', '\n', '日', '🧪']);
    struct Bytes(&'static [u8]);
    impl Serialize for Bytes {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    same(&Bytes(b"\x00\xffbytes"));
    same(&Bytes(b""));
}

#[test]
fn a_display_collected_as_a_string_is_written_straight_into_the_tape() {
    struct Price(f64);
    impl Serialize for Price {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("${:.2} \"USD\"", self.0))
        }
    }
    same(&Price(8.99));
    assert_eq!(
        Tape::of(&Price(8.99)).to_json().as_str(),
        r#""$8.99 \"USD\"""#
    );
}

#[test]
fn maps_keep_their_order_and_their_keys_as_serde_json_writes_them() {
    same(&BTreeMap::from([(3, "c"), (-1, "a")]));
    same(&BTreeMap::from([(1u64, 1), (u64::MAX, 2)]));
    same(&BTreeMap::from([('k', 1)]));
    same(&BTreeMap::from([("b", 1), ("a", 2)]));
    same(&BTreeMap::from([(Some("a"), 1)]));
    same(&BTreeMap::from([(Some("a"), 1), (None, 2)]));
    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum Side {
        Left,
    }
    same(&BTreeMap::from([(Side::Left, 1)]));
    // Keys serde_json refuses give its error, not a different JSON.
    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    struct Compound {
        a: u8,
    }
    let refused = BTreeMap::from([(Compound { a: 1 }, 1)]);
    same(&refused);
    assert!(
        Tape::of(&refused)
            .to_json()
            .as_str()
            .starts_with("\"<not serializable: key must be"),
        "{}",
        Tape::of(&refused).to_json()
    );
    same(&BTreeMap::from([(vec![1], 1)]));
}

#[test]
fn json_values_and_raw_json_replay_unchanged() {
    let value = serde_json::json!({
        "price": [14.99, 80],
        "min_rating": 3.8,
        "category": "Laptop Stands",
        "nested": {"ok": true, "none": null, "list": [], "obj": {}},
        "big": u64::MAX,
        "neg": i64::MIN,
    });
    same(&value);
    let raw = serde_json::value::RawValue::from_string(r#"{"kept": [1, 2.50, "as is"]}"#.into())
        .expect("valid JSON");
    same(&raw);
    same(&BTreeMap::from([("raw", &raw)]));
    // X-Ray's own `Json` embeds itself as raw JSON.
    same(&Json::from_serialize(&value));
}

#[test]
fn a_serialize_that_fails_or_panics_is_recorded_as_a_string_that_says_so() {
    struct Fails;
    impl Serialize for Fails {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(None)?;
            map.serialize_entry("half", "written")?;
            Err(serde::ser::Error::custom("the price feed is closed"))
        }
    }
    same(&Fails);
    assert_eq!(
        Tape::of(&Fails).to_json().as_str(),
        "\"<not serializable: the price feed is closed>\""
    );
    struct Panics;
    impl Serialize for Panics {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            panic!("boom")
        }
    }
    same(&Panics);
    // A value after one that failed is recorded whole.
    let mut object = ObjectTape::new();
    object.push("bad", &Tape::of(&Fails));
    object.push("good", &Tape::of(&[1, 2]));
    assert_eq!(
        object.finish().to_json().as_str(),
        r#"{"bad":"<not serializable: the price feed is closed>","good":[1,2]}"#
    );
}

#[test]
fn debug_text_is_a_json_string() {
    #[derive(Debug)]
    struct NotSerialize {
        _name: &'static str,
    }
    let value = NotSerialize { _name: "x\"y" };
    assert_eq!(
        Tape::debug(&value).to_json(),
        Json::string(&format!("{value:?}"))
    );
    struct PanicsInDebug;
    impl fmt::Debug for PanicsInDebug {
        fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
            panic!("debug boom")
        }
    }
    assert_eq!(
        Tape::debug(&PanicsInDebug).to_json().as_str(),
        "\"<not recorded: Debug panicked: debug boom>\""
    );
}

#[test]
fn an_objects_entries_come_back_one_by_one() {
    let mut object = ObjectTape::new();
    object.push("model", &Tape::of("gpt"));
    object.push(
        "limits",
        &Tape::of(&serde_json::json!({"a": [1, {"b": null}]})),
    );
    object.push("weird \"key\"", &Tape::of(&Kind::Window(1, 2)));
    let tape = object.finish();
    let read = entries(tape.as_bytes()).expect("an object");
    let text: Vec<(String, String)> = read
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json().into_string()))
        .collect();
    assert_eq!(
        text,
        [
            ("model".to_owned(), "\"gpt\"".to_owned()),
            ("limits".to_owned(), r#"{"a":[1,{"b":null}]}"#.to_owned()),
            ("weird \"key\"".to_owned(), r#"{"Window":[1,2]}"#.to_owned()),
        ]
    );
    assert_eq!(entries(Tape::of(&[1]).as_bytes()), None);
    assert_eq!(entries(ObjectTape::new().finish().as_bytes()), Some(vec![]));
}

/// SplitMix64, for values and corruptions that are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn text(&mut self) -> String {
        const PIECES: [&str; 10] = ["a", "Z", " ", "\"", "\\", "\n", "\u{1}", "é", "🧪", "/"];
        (0..self.below(6))
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }

    fn value(&mut self, depth: u32) -> serde_json::Value {
        use serde_json::Value;
        match self.below(if depth > 3 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(self.below(2) == 0),
            2 => Value::from(self.next() as i64),
            3 => Value::from(f64::from_bits(self.next() >> 2)),
            4 => Value::String(self.text()),
            5 => (0..self.below(4)).map(|_| self.value(depth + 1)).collect(),
            _ => Value::Object(
                (0..self.below(4))
                    .map(|_| (self.text(), self.value(depth + 1)))
                    .collect(),
            ),
        }
    }
}

#[test]
fn generated_json_values_replay_to_the_same_text() {
    let mut rng = Rng(42);
    for _ in 0..2_000 {
        same(&rng.value(0));
    }
}

/// What the formatter path ([`json::write`]) makes of `value`'s tape: `None` where it leaves
/// the tape to the replay.
fn formatted<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    let mut out = Vec::new();
    json::write(Tape::of(value).as_bytes(), &mut out)?;
    Some(String::from_utf8(out).expect("UTF-8"))
}

#[test]
fn values_with_nothing_to_escape_are_written_by_the_formatter_as_serde_json_writes_them() {
    let mut rng = Rng(42);
    let (mut written, mut replayed) = (0, 0);
    for _ in 0..2_000 {
        let value = rng.value(0);
        let expected = serde_json::to_string(&value).expect("JSON");
        // A `serde_json::Value` has string keys and 64-bit numbers: only an escaped byte
        // (`\"`, `\\`, a control character) sends it to the replay.
        match formatted(&value) {
            Some(text) => {
                assert_eq!(text, expected);
                written += 1;
            }
            None => {
                assert!(expected.contains('\\'), "left to the replay: {expected}");
                replayed += 1;
            }
        }
    }
    assert!(
        written > 1_000 && replayed > 200,
        "{written} written, {replayed} replayed"
    );
    let query = query();
    assert_eq!(
        formatted(&query).as_deref(),
        Some(serde_json::to_string(&query).expect("JSON").as_str())
    );
    for number in [f64::NAN, f64::INFINITY, -0.0, 1e300, 0.1] {
        assert_eq!(
            formatted(&number),
            Some(serde_json::to_string(&number).expect("JSON"))
        );
        let single = number as f32;
        assert_eq!(
            formatted(&single),
            Some(serde_json::to_string(&single).expect("JSON"))
        );
    }
    for number in [i64::MIN, -1, 0, u64::MAX as i64] {
        assert_eq!(formatted(&number), Some(number.to_string()));
    }
    assert_eq!(formatted(&u64::MAX), Some(u64::MAX.to_string()));
    assert_eq!(
        formatted(&(i8::MIN, u8::MAX, i32::MIN, u32::MAX)),
        Some("[-128,255,-2147483648,4294967295]".into())
    );
    assert_eq!(
        formatted(&((), true, false, [(); 0], BTreeMap::<String, u8>::new())),
        Some("[null,true,false,[],{}]".into())
    );
    // 128 levels of sequences are written; a 129th (which only a tape built around a value
    // can hold) is left to the replay, which writes it all the same.
    let nested = |levels: usize| {
        let mut bytes = vec![tag::SEQ; levels];
        bytes.extend(vec![tag::END; levels]);
        Tape::from_bytes(bytes)
    };
    let brackets = |levels: usize| "[".repeat(levels) + &"]".repeat(levels);
    let mut out = Vec::new();
    assert_eq!(json::write(nested(128).as_bytes(), &mut out), Some(()));
    assert_eq!(String::from_utf8(out).expect("UTF-8"), brackets(128));
    assert_eq!(json::write(nested(129).as_bytes(), &mut Vec::new()), None);
    assert_eq!(nested(129).to_json().as_str(), brackets(129));
}

#[test]
fn values_the_formatter_cannot_write_alone_are_replayed_to_the_same_text() {
    let mut by_number = BTreeMap::new();
    by_number.insert(7u32, "seven");
    let raw = serde_json::value::RawValue::from_string("{\"a\":1}".into()).expect("JSON");
    assert_eq!(formatted(&by_number), None);
    same(&by_number);
    assert_eq!(formatted(&"tab\there"), None);
    same(&"tab\there");
    assert_eq!(formatted(&serde_bytes_like()), None);
    same(&serde_bytes_like());
    assert_eq!(formatted(&u128::MAX), None);
    same(&u128::MAX);
    assert_eq!(formatted(&raw), None);
    same(&raw);
    // A string that is not UTF-8 (a corrupt tape) is left to the replay, which says so.
    let corrupt = Tape::from_bytes(vec![tag::STR, 2, 0, 0, 0, 0xC3, b'(']);
    let mut out = Vec::new();
    assert_eq!(json::write(corrupt.as_bytes(), &mut out), Some(()));
    assert!(String::from_utf8(out).is_err());
    assert_eq!(
        corrupt.to_json().as_str(),
        r#""<not serializable: a recorded string was not UTF-8>""#
    );
}

/// A value serialized with `serialize_bytes`.
fn serde_bytes_like() -> impl Serialize {
    struct Bytes;
    impl Serialize for Bytes {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b"\x01\x02")
        }
    }
    Bytes
}

#[test]
fn a_cut_or_corrupt_tape_replays_to_a_string_never_a_panic() {
    let mut rng = Rng(7);
    let whole = Tape::of(&serde_json::json!({
        "a": [1, -2, 3.5, "four", null, true, {"b": "c"}],
        "raw": serde_json::value::RawValue::from_string("[1]".into()).expect("JSON"),
    }));
    let bytes = whole.as_bytes();
    for cut in 0..bytes.len() {
        let json = to_json(&bytes[..cut], Vec::new());
        assert!(
            json.as_str().starts_with("\"<not serializable: "),
            "cut at {cut}: {json}"
        );
    }
    for _ in 0..5_000 {
        let mut corrupt = bytes.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(corrupt.len() as u64) as usize;
            corrupt[at] = rng.next() as u8;
        }
        let json = to_json(&corrupt, Vec::new());
        assert!(Json::parse(json.as_str()).is_some(), "not JSON: {json}");
        let _ = entries(&corrupt);
    }
}

#[test]
fn values_nested_past_serde_jsons_limit_are_recorded_as_a_string_that_says_so() {
    fn nested(depth: usize) -> serde_json::Value {
        (0..depth).fold(serde_json::json!(1), |inner, _| serde_json::json!([inner]))
    }
    // As deep as serde_json reads back: recorded whole.
    same(&nested(record::MAX_DEPTH as usize));
    // One level deeper: a string (the writer replays a tape recursively on its own stack).
    assert_eq!(
        Tape::of(&nested(record::MAX_DEPTH as usize + 1))
            .to_json()
            .as_str(),
        "\"<not serializable: sequences and maps nest deeper than 128 levels>\""
    );
    // An enum variant's content counts as a level, as in its JSON.
    #[derive(Serialize)]
    enum Wrap {
        In(serde_json::Value),
    }
    assert!(Tape::of(&Wrap::In(nested(record::MAX_DEPTH as usize)))
        .to_json()
        .as_str()
        .contains("deeper than 128"));
    same(&Wrap::In(nested(record::MAX_DEPTH as usize - 1)));
}

#[test]
fn serde_jsons_json_text_structs_replay_as_json_text_and_nothing_else_passes_as_one() {
    // A `Number` under serde_json's `arbitrary_precision` feature serializes as this struct.
    struct Precise(&'static str);
    impl Serialize for Precise {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct;
            const TOKEN: &str = "$serde_json::private::Number";
            let mut number = s.serialize_struct(TOKEN, 1)?;
            number.serialize_field(TOKEN, self.0)?;
            number.end()
        }
    }
    assert_eq!(
        Tape::of(&[Precise("1.50"), Precise("12345678901234567890123")])
            .to_json()
            .as_str(),
        "[1.50,12345678901234567890123]"
    );
    // An internally tagged variant around a RawValue puts its tag into the RawValue's
    // struct: serde_json refuses it, and so does the tape.
    #[derive(Serialize)]
    #[serde(tag = "kind")]
    enum Tagged {
        Raw(Box<serde_json::value::RawValue>),
    }
    let raw = serde_json::value::RawValue::from_string("{\"a\":1}".into()).expect("JSON");
    let value = Tagged::Raw(raw);
    for json in [Tape::of(&value).to_json(), Json::from_serialize(&value)] {
        assert!(json.as_str().starts_with("\"<not serializable: "), "{json}");
    }
}
