//! Numbers as a person writes them, for derived reasons.

use std::fmt::{self, Write as _};

/// A number as a person writes it: `3.8`, `14.99`, `1000`.
pub(crate) struct Num(pub(crate) f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = zmij::Buffer::new();
        match self.short(&mut buf) {
            Some(text) => f.write_str(text),
            None => self.fmt_slow(f),
        }
    }
}

impl Num {
    /// The text, when the fast paths give it: an integer below 1e15, or the shortest text that
    /// reads back as the number (zmij, as serde_json uses) when it has at most 4 decimals and
    /// no exponent. For |v| < 1e11 that is exactly what `{:.4}` with its zeros trimmed prints
    /// (v is within half an ulp < 0.5e-4 of it), without bignum arithmetic.
    fn short<'a>(&self, buf: &'a mut zmij::Buffer) -> Option<&'a str> {
        let v = self.0;
        if !v.is_finite() || v.abs() >= 1e11 {
            return None;
        }
        let text = buf.format_finite(v);
        let text = text.strip_suffix(".0").unwrap_or(text);
        if text.contains(['e', 'E']) {
            return None;
        }
        let decimals = text.find('.').map_or(0, |dot| text.len() - dot - 1);
        (decimals <= 4 && text != "-0").then_some(text)
    }

    fn fmt_slow(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.fract() == 0.0 && v.abs() < 1e15 {
            write!(f, "{}", v as i64)
        } else if v.is_finite() {
            let text = format!("{v:.4}");
            f.write_str(text.trim_end_matches('0').trim_end_matches('.'))
        } else {
            write!(f, "{v}")
        }
    }

    /// Appends the text to `out`.
    pub(crate) fn push_to(&self, out: &mut String) {
        let mut buf = zmij::Buffer::new();
        match self.short(&mut buf) {
            Some(text) => out.push_str(text),
            None => {
                let _ = write!(out, "{self}");
            }
        }
    }
}
