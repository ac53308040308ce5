//! Parsing of the attributes' options: `#[xray::step(name = "..", kind = "..", skip(a), ..)]`.
//!
//! Every error is spanned on the token the user has to change: an unknown option on its name, a
//! bad value on the value, a duplicate option on its second occurrence.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Error, Expr, Ident, Lit, LitStr, Token};

/// Which attribute is being expanded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Step,
    Execution,
}

impl Kind {
    /// The attribute as the user writes it, for error messages.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Kind::Step => "#[xray::step]",
            Kind::Execution => "#[xray::execution]",
        }
    }

    /// The options this attribute accepts, in the order the documentation lists them.
    fn options(self) -> &'static [&'static str] {
        match self {
            Kind::Step => &[
                "name", "kind", "skip", "skip_all", "input", "output", "level", "capture",
                "metadata",
            ],
            Kind::Execution => &[
                "name", "tags", "metadata", "skip", "skip_all", "input", "output", "level",
            ],
        }
    }
}

/// A key of `metadata(key = expr, ..)` with its value expression.
pub(crate) struct MetadataEntry {
    pub(crate) key: String,
    pub(crate) value: Expr,
}

/// The parsed options of one attribute. Options that the attribute does not accept stay at
/// their defaults (the parser rejects them).
pub(crate) struct Options {
    /// `name = ".."`: the step's (or execution's) name; `None` means the function's name.
    pub(crate) name: Option<String>,
    /// `kind = ".."` (steps only).
    pub(crate) kind: Option<String>,
    /// `skip(a, b)`: arguments (or `self`) not to record.
    pub(crate) skip: Vec<Ident>,
    /// `skip_all`: record no argument.
    pub(crate) skip_all: bool,
    /// `input = expr`: record this instead of the arguments.
    pub(crate) input: Option<Expr>,
    /// `output = false` turns off recording the return value.
    pub(crate) output: bool,
    /// `level = ".."`: the span's level, as the path of a `tracing::Level` constant.
    pub(crate) level: TokenStream,
    /// `capture = "all" | "summary" | N` (steps only), as the text of the span field.
    pub(crate) capture: Option<String>,
    /// `metadata(key = expr, ..)`.
    pub(crate) metadata: Vec<MetadataEntry>,
    /// `tags("a", "b")` (executions only).
    pub(crate) tags: Vec<String>,
}

impl Options {
    fn new() -> Self {
        Options {
            name: None,
            kind: None,
            skip: Vec::new(),
            skip_all: false,
            input: None,
            output: true,
            level: level_path("INFO"),
            capture: None,
            metadata: Vec::new(),
            tags: Vec::new(),
        }
    }
}

/// Parses the tokens between the attribute's parentheses.
pub(crate) fn parse(kind: Kind, tokens: TokenStream) -> syn::Result<Options> {
    (|input: ParseStream| parse_options(kind, input)).parse2(tokens)
}

fn parse_options(kind: Kind, input: ParseStream) -> syn::Result<Options> {
    let mut options = Options::new();
    let mut seen: Vec<String> = Vec::new();
    let mut skip_span = None;
    let mut skip_all_span = None;
    let mut input_span = None;

    while !input.is_empty() {
        let option: Ident = input.call(Ident::parse_any).map_err(|err| {
            Error::new(
                err.span(),
                format!(
                    "expected an option of `{}`: one of {}",
                    kind.attribute(),
                    kind.options().join(", ")
                ),
            )
        })?;
        let key = option.unraw().to_string();
        if !kind.options().contains(&key.as_str()) {
            return Err(Error::new(
                option.span(),
                format!(
                    "unknown option `{key}` for `{}`; expected one of: {}",
                    kind.attribute(),
                    kind.options().join(", ")
                ),
            ));
        }
        if seen.contains(&key) {
            return Err(Error::new(
                option.span(),
                format!("duplicate option `{key}`: give it once"),
            ));
        }
        seen.push(key.clone());

        match key.as_str() {
            "name" => {
                let lit = string_value(input, &option, "name = \"select_best\"")?;
                if lit.value().trim().is_empty() {
                    return Err(Error::new(lit.span(), "the name must not be empty"));
                }
                options.name = Some(lit.value());
            }
            "kind" => {
                let lit = string_value(input, &option, "kind = \"filter\"")?;
                options.kind = Some(lit.value());
            }
            "skip" => {
                let content = parenthesized(input, &option, "skip(arg1, arg2)")?;
                let names = Punctuated::<Ident, Token![,]>::parse_terminated_with(
                    &content,
                    Ident::parse_any,
                )?;
                if names.is_empty() {
                    return Err(Error::new(
                        option.span(),
                        "`skip()` names no argument: write `skip(arg1, arg2)`, or remove it",
                    ));
                }
                options.skip = names.into_iter().collect();
                skip_span = Some(option.span());
            }
            "skip_all" => {
                if input.peek(Token![=]) || input.peek(syn::token::Paren) {
                    return Err(Error::new(
                        option.span(),
                        "`skip_all` takes no value: write `skip_all`",
                    ));
                }
                options.skip_all = true;
                skip_all_span = Some(option.span());
            }
            "input" => {
                expect_eq(input, &option, "input = (a, b)")?;
                options.input = Some(input.parse()?);
                input_span = Some(option.span());
            }
            "output" => {
                expect_eq(input, &option, "output = false")?;
                let lit: syn::LitBool = input.parse().map_err(|err| {
                    Error::new(err.span(), "expected `true` or `false`: `output = false`")
                })?;
                options.output = lit.value;
            }
            "level" => {
                let lit = string_value(input, &option, "level = \"debug\"")?;
                options.level = parse_level(&lit)?;
            }
            "capture" => {
                expect_eq(input, &option, "capture = \"summary\"")?;
                options.capture = Some(parse_capture(input)?);
            }
            "metadata" => {
                let content = parenthesized(input, &option, "metadata(model = \"v2\")")?;
                options.metadata = parse_metadata(&content)?;
            }
            "tags" => {
                let content = parenthesized(input, &option, "tags(\"nightly\", \"eu\")")?;
                let tags = Punctuated::<Lit, Token![,]>::parse_terminated(&content)?;
                for tag in tags {
                    match tag {
                        Lit::Str(s) => options.tags.push(s.value()),
                        other => {
                            return Err(Error::new(
                                other.span(),
                                "a tag is a string literal: `tags(\"nightly\", \"eu\")`",
                            ))
                        }
                    }
                }
            }
            _ => unreachable!("every accepted option is handled"),
        }

        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>().map_err(|err| {
            Error::new(
                err.span(),
                format!("expected `,` between the options of `{}`", kind.attribute()),
            )
        })?;
    }

    if let (Some(_), Some(span)) = (skip_span, skip_all_span) {
        return Err(Error::new(
            span,
            "`skip_all` already skips every argument: remove `skip(..)` or `skip_all`",
        ));
    }
    if input_span.is_some() {
        if let Some(other) = skip_span.or(skip_all_span) {
            return Err(Error::new(
                other,
                "`input = ..` replaces the recorded arguments, so there is nothing to skip: \
                 remove `skip`/`skip_all`",
            ));
        }
    }
    Ok(options)
}

/// Parses `= "text"` after `option`.
fn string_value(input: ParseStream, option: &Ident, example: &str) -> syn::Result<LitStr> {
    expect_eq(input, option, example)?;
    input.parse::<LitStr>().map_err(|err| {
        Error::new(
            err.span(),
            format!("expected a string literal: `{example}`"),
        )
    })
}

/// Consumes the `=` after `option`, with an error that shows the expected form.
fn expect_eq(input: ParseStream, option: &Ident, example: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        Ok(())
    } else {
        Err(Error::new(
            option.span(),
            format!("expected `=` after `{option}`: `{example}`"),
        ))
    }
}

/// The parenthesized content after `option`.
fn parenthesized<'a>(
    input: ParseStream<'a>,
    option: &Ident,
    example: &str,
) -> syn::Result<syn::parse::ParseBuffer<'a>> {
    if !input.peek(syn::token::Paren) {
        return Err(Error::new(
            option.span(),
            format!("expected parentheses after `{option}`: `{example}`"),
        ));
    }
    let content;
    syn::parenthesized!(content in input);
    Ok(content)
}

fn level_path(constant: &str) -> TokenStream {
    let constant = Ident::new(constant, Span::call_site());
    quote!(::xray::__private::tracing::Level::#constant)
}

fn parse_level(lit: &LitStr) -> syn::Result<TokenStream> {
    let constant = match lit.value().to_ascii_lowercase().as_str() {
        "trace" => "TRACE",
        "debug" => "DEBUG",
        "info" => "INFO",
        "warn" => "WARN",
        "error" => "ERROR",
        _ => {
            return Err(Error::new(
                lit.span(),
                format!(
                    "unknown level {:?}; expected one of: \"trace\", \"debug\", \"info\", \"warn\", \"error\"",
                    lit.value()
                ),
            ))
        }
    };
    Ok(level_path(constant))
}

fn parse_capture(input: ParseStream) -> syn::Result<String> {
    const EXPECTED: &str =
        "expected `capture = \"all\"`, `capture = \"summary\"` or a cap on kept evaluations such as `capture = 500`";
    let lit: Lit = input
        .parse()
        .map_err(|err| Error::new(err.span(), EXPECTED))?;
    match &lit {
        Lit::Str(s) => match s.value().as_str() {
            "all" | "summary" => Ok(s.value()),
            other if other.trim().parse::<u64>().is_ok() => Err(Error::new(
                s.span(),
                format!(
                    "write the cap as an integer, without quotes: `capture = {}`",
                    other.trim()
                ),
            )),
            other => Err(Error::new(
                s.span(),
                format!("unknown capture policy {other:?}; {EXPECTED}"),
            )),
        },
        Lit::Int(n) => {
            if !n.suffix().is_empty() {
                return Err(Error::new(
                    n.span(),
                    format!(
                        "write the cap without a suffix: `capture = {}`",
                        n.base10_digits()
                    ),
                ));
            }
            let cap: u64 = n
                .base10_parse()
                .map_err(|_| Error::new(n.span(), "the cap is too large: it must fit in a u64"))?;
            Ok(cap.to_string())
        }
        other => Err(Error::new(other.span(), EXPECTED)),
    }
}

fn parse_metadata(content: ParseStream) -> syn::Result<Vec<MetadataEntry>> {
    let mut entries: Vec<MetadataEntry> = Vec::new();
    while !content.is_empty() {
        let (key, span) = if content.peek(LitStr) {
            let lit: LitStr = content.parse()?;
            (lit.value(), lit.span())
        } else {
            let ident = content.call(Ident::parse_any).map_err(|err| {
                Error::new(
                    err.span(),
                    "expected a key: `metadata(model = \"v2\", \"max-price\" = limit)`",
                )
            })?;
            (ident.unraw().to_string(), ident.span())
        };
        if key.is_empty() {
            return Err(Error::new(span, "a metadata key must not be empty"));
        }
        if entries.iter().any(|e| e.key == key) {
            return Err(Error::new(span, format!("duplicate metadata key `{key}`")));
        }
        if !content.peek(Token![=]) {
            return Err(Error::new(
                span,
                format!("expected `=` after metadata key `{key}`: `{key} = value`"),
            ));
        }
        content.parse::<Token![=]>()?;
        let value: Expr = content.parse()?;
        entries.push(MetadataEntry { key, value });
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(tokens: TokenStream) -> syn::Result<Options> {
        parse(Kind::Step, tokens)
    }

    fn message(result: syn::Result<Options>) -> String {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn parses_every_step_option() {
        let options = step(quote!(
            name = "pick",
            kind = "filter",
            skip(a, self),
            output = false,
            level = "debug",
            capture = 25,
            metadata(model = "v2", "max-price" = limit * 2)
        ))
        .expect("valid options");
        assert_eq!(options.name.as_deref(), Some("pick"));
        assert_eq!(options.kind.as_deref(), Some("filter"));
        assert_eq!(options.skip.len(), 2);
        assert!(!options.output);
        assert_eq!(options.capture.as_deref(), Some("25"));
        assert_eq!(options.metadata.len(), 2);
        assert_eq!(options.metadata[1].key, "max-price");
        assert!(options.level.to_string().contains("DEBUG"));
    }

    #[test]
    fn parses_execution_options() {
        let options = parse(
            Kind::Execution,
            quote!(name = "run", tags("a", "b"), skip_all),
        )
        .expect("valid options");
        assert_eq!(options.tags, vec!["a".to_owned(), "b".to_owned()]);
        assert!(options.skip_all);
    }

    #[test]
    fn unknown_option_lists_the_valid_ones() {
        let msg = message(step(quote!(kindd = "x")));
        assert_eq!(
            msg,
            "unknown option `kindd` for `#[xray::step]`; expected one of: name, kind, skip, \
             skip_all, input, output, level, capture, metadata"
        );
        let msg = message(parse(Kind::Execution, quote!(kind = "x")));
        assert!(msg.starts_with("unknown option `kind` for `#[xray::execution]`"));
    }

    #[test]
    fn rejects_bad_values_and_duplicates() {
        assert!(message(step(quote!(level = "loud"))).contains("unknown level"));
        assert!(message(step(quote!(capture = "most"))).contains("unknown capture policy"));
        assert!(message(step(quote!(capture = "10"))).contains("capture = 10"));
        assert!(message(step(quote!(name = "a", name = "b"))).contains("duplicate option"));
        assert!(message(step(quote!(skip(a), skip_all))).contains("skip_all"));
        assert!(message(step(quote!(input = a, skip(b)))).contains("input = .."));
        assert!(message(step(quote!(name = a))).contains("string literal"));
    }
}
