//! The expansion: checks the item, then rewrites the function's body around a
//! `::xray::__private::StepGuard` (see the crate documentation for the shape).

use crate::args::{self, Kind, Options};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    AttrStyle, Error, FnArg, GenericArgument, Ident, Item, ItemFn, LitStr, Pat, PathArguments,
    ReturnType, Type,
};

/// Expands `#[xray::step]` or `#[xray::execution]`. On an error, the item is emitted unchanged
/// next to the error, so that the error is the only one the user sees.
pub(crate) fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = match parse_function(kind, item.clone()) {
        Ok(function) => function,
        Err(err) => {
            let err = err.to_compile_error();
            return quote!(#err #item);
        }
    };
    let result = args::parse(kind, attr).and_then(|options| rewrite(kind, &options, &function));
    match result {
        Ok(tokens) => tokens,
        Err(err) => {
            let err = err.to_compile_error();
            quote!(#err #function)
        }
    }
}

/// Parses the item as a function the attribute can rewrite, or explains why it cannot.
fn parse_function(kind: Kind, item: TokenStream) -> syn::Result<ItemFn> {
    let attribute = kind.attribute();
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => return Err(not_a_function(kind, item)),
    };
    let sig = &function.sig;
    if let Some(token) = &sig.constness {
        return Err(Error::new(
            token.span(),
            format!(
                "`{attribute}` cannot be applied to a `const fn`: recording happens at run time; \
                 remove `const` or the attribute"
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(Error::new(
            variadic.dots.span(),
            format!("`{attribute}` cannot be applied to a variadic function"),
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Type::Never(never) = &**ty {
            return Err(Error::new(
                never.span(),
                format!(
                    "`{attribute}` cannot be applied to a function that never returns (`-> !`): \
                     a step must end"
                ),
            ));
        }
    }
    Ok(function)
}

/// The error for an item that is not a function with a body.
fn not_a_function(kind: Kind, item: TokenStream) -> Error {
    let attribute = kind.attribute();
    let general =
        format!("`{attribute}` can only be applied to a function (`fn` or `async fn`) with a body");
    if let Ok(method) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
        return Error::new(
            method.sig.ident.span(),
            format!(
                "`{attribute}` needs the function's body: put it on the method of each `impl`, \
                 not on the trait's declaration"
            ),
        );
    }
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Impl(imp)) => Error::new(
            imp.impl_token.span,
            format!("{general}: put it on each method of the `impl` block"),
        ),
        Ok(Item::Struct(s)) => spanned_between(&s.struct_token, &s.ident, &general),
        Ok(Item::Enum(e)) => spanned_between(&e.enum_token, &e.ident, &general),
        Ok(Item::Union(u)) => spanned_between(&u.union_token, &u.ident, &general),
        Ok(Item::Trait(t)) => spanned_between(&t.trait_token, &t.ident, &general),
        Ok(Item::Mod(m)) => spanned_between(&m.mod_token, &m.ident, &general),
        Ok(Item::Const(c)) => spanned_between(&c.const_token, &c.ident, &general),
        Ok(Item::Static(s)) => spanned_between(&s.static_token, &s.ident, &general),
        Ok(Item::Type(t)) => spanned_between(&t.type_token, &t.ident, &general),
        Ok(other) => Error::new_spanned(other, general),
        Err(_) => match item.into_iter().next() {
            Some(first) => Error::new(first.span(), general),
            None => Error::new(Span::call_site(), general),
        },
    }
}

fn spanned_between(keyword: &impl ToTokens, ident: &Ident, message: &str) -> Error {
    Error::new_spanned(quote!(#keyword #ident), message)
}

/// How the return value is recorded.
enum Output {
    /// `()`, `impl Trait`, or `output = false`: nothing.
    Nothing,
    /// Any other value: serialized, spanned at the return type for its compile error.
    Value(Span),
    /// A `Result`: the `Ok` value (when `Some`, spanned at its type) and the error's text.
    Result(Option<Span>),
}

/// The return type to pin the body's type with (`_` where it contains `impl Trait`), and how
/// the value is recorded.
fn classify_output(output: &ReturnType, record: bool) -> (TokenStream, Output) {
    let ty = match output {
        ReturnType::Default => return (quote!(()), Output::Nothing),
        ReturnType::Type(_, ty) => &**ty,
    };
    let mut pinned = ty.clone();
    let mut inferer = InferImplTrait { found: false };
    inferer.visit_type_mut(&mut pinned);
    let opaque = inferer.found;
    let pinned = pinned.into_token_stream();

    if let Some(ok) = result_ok_type(ty) {
        let record_ok = record && !opaque && !ok.is_some_and(is_unit);
        let span = ok.map_or_else(|| ty.span(), Spanned::span);
        return (pinned, Output::Result(record_ok.then_some(span)));
    }
    if !record || opaque || is_unit(ty) {
        return (pinned, Output::Nothing);
    }
    (pinned, Output::Value(ty.span()))
}

/// Replaces every `impl Trait` in a type with `_`.
struct InferImplTrait {
    found: bool,
}

impl VisitMut for InferImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(imp) = ty {
            self.found = true;
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: syn::Token![_](imp.impl_token.span),
            });
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

fn is_unit(ty: &Type) -> bool {
    match ty {
        Type::Tuple(tuple) => tuple.elems.is_empty(),
        Type::Paren(paren) => is_unit(&paren.elem),
        Type::Group(group) => is_unit(&group.elem),
        _ => false,
    }
}

/// `Some(ok type)` when the type's last path segment is `Result` (`Some(None)` for a `Result`
/// alias that names no type argument, such as `anyhow::Result` without arguments).
fn result_ok_type(ty: &Type) -> Option<Option<&Type>> {
    let path = match ty {
        Type::Path(path) if path.qself.is_none() => &path.path,
        Type::Paren(paren) => return result_ok_type(&paren.elem),
        Type::Group(group) => return result_ok_type(&group.elem),
        _ => return None,
    };
    let last = path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let ok = match &last.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        }),
        _ => None,
    };
    Some(ok)
}

/// The identifiers a parameter's pattern binds, in order.
fn bound_identifiers(pat: &Pat, out: &mut Vec<Ident>) {
    match pat {
        Pat::Ident(ident) => {
            out.push(ident.ident.clone());
            if let Some((_, sub)) = &ident.subpat {
                bound_identifiers(sub, out);
            }
        }
        Pat::Tuple(tuple) => tuple.elems.iter().for_each(|p| bound_identifiers(p, out)),
        Pat::TupleStruct(tuple) => tuple.elems.iter().for_each(|p| bound_identifiers(p, out)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| bound_identifiers(&f.pat, out)),
        Pat::Slice(slice) => slice.elems.iter().for_each(|p| bound_identifiers(p, out)),
        Pat::Reference(reference) => bound_identifiers(&reference.pat, out),
        Pat::Paren(paren) => bound_identifiers(&paren.pat, out),
        Pat::Type(typed) => bound_identifiers(&typed.pat, out),
        // An or-pattern binds the same names in every alternative.
        Pat::Or(or) => {
            if let Some(first) = or.cases.first() {
                bound_identifiers(first, out);
            }
        }
        _ => {}
    }
}

/// The name under which an identifier is recorded (`r#type` is recorded as `type`).
fn key(ident: &Ident) -> String {
    ident.unraw().to_string()
}

/// Rewrites the function.
fn rewrite(kind: Kind, options: &Options, function: &ItemFn) -> syn::Result<TokenStream> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let outer_attrs = attrs.iter().filter(|a| matches!(a.style, AttrStyle::Outer));
    let inner_attrs = attrs
        .iter()
        .filter(|a| !matches!(a.style, AttrStyle::Outer));

    // Arguments and the skip list.
    let mut has_receiver = false;
    let mut bindings = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(_) => has_receiver = true,
            FnArg::Typed(typed) => bound_identifiers(&typed.pat, &mut bindings),
        }
    }
    for skipped in &options.skip {
        check_skipped(skipped, has_receiver, &bindings, &sig.ident)?;
    }
    let recorded: Vec<&Ident> = if options.skip_all || options.input.is_some() {
        Vec::new()
    } else {
        bindings
            .iter()
            .filter(|b| !options.skip.iter().any(|s| key(s) == key(b)))
            .collect()
    };

    // Hygienic names for the generated locals: the body cannot see them.
    let guard = Ident::new("__xray", Span::mixed_site());
    let writer = Ident::new("__xray_writer", Span::mixed_site());
    let value = Ident::new("__xray_value", Span::mixed_site());
    let inner = Ident::new("__xray_inner", Span::mixed_site());
    let panic = Ident::new("__xray_panic", Span::mixed_site());

    let span = span_expression(kind, options, &sig.ident);

    // Input and metadata, evaluated only when the X-Ray layer records this span.
    let mut record = TokenStream::new();
    if let Some(expr) = &options.input {
        record.extend(quote_spanned! {expr.span()=>
            #guard.set_input_json((&&&::xray::__private::Arg(&(#expr))).__xray_arg());
        });
    } else if !recorded.is_empty() {
        let pushes = recorded.iter().map(|ident| {
            let name = key(ident);
            quote_spanned! {ident.span()=>
                (&&&::xray::__private::Arg(&#ident)).__xray_arg_into(&mut #writer, #name);
            }
        });
        record.extend(quote! {
            let mut #writer = ::xray::__private::ObjectWriter::new();
            #(#pushes)*
            #guard.set_input(#writer);
        });
    }
    if !options.metadata.is_empty() {
        let pushes = options.metadata.iter().map(|entry| {
            let name = &entry.key;
            let expr = &entry.value;
            quote_spanned! {expr.span()=>
                (&&&::xray::__private::Arg(&(#expr))).__xray_arg_into(&mut #writer, #name);
            }
        });
        record.extend(quote! {
            let mut #writer = ::xray::__private::ObjectWriter::new();
            #(#pushes)*
            #guard.set_metadata(#writer);
        });
    }
    let record = if record.is_empty() {
        record
    } else {
        // `_name` arguments are recorded too: clippy's pedantic `used_underscore_binding`
        // would otherwise flag the user's function.
        quote! {
            #[allow(clippy::used_underscore_binding)]
            if #guard.is_recording() {
                #record
            }
        }
    };

    // What happens when the body returns.
    let (ret, output) = classify_output(&sig.output, options.output);
    let on_return = match output {
        Output::Nothing => quote! {
            #guard.ok(|| ::core::option::Option::None);
        },
        Output::Value(span) => quote_spanned! {span=>
            #guard.ok(|| ::core::option::Option::Some(
                (&&&::xray::__private::Arg(&#value)).__xray_output()
            ));
        },
        Output::Result(ok) => {
            let on_ok = match ok {
                Some(span) => quote_spanned! {span=>
                    ::core::result::Result::Ok(#inner) => #guard.ok(|| ::core::option::Option::Some(
                        (&&&::xray::__private::Arg(#inner)).__xray_output()
                    )),
                },
                None => quote! {
                    ::core::result::Result::Ok(_) => #guard.ok(|| ::core::option::Option::None),
                },
            };
            quote! {
                match &#value {
                    #on_ok
                    ::core::result::Result::Err(#inner) => {
                        if #guard.is_recording() {
                            #guard.err((&&&::xray::__private::ErrArg(#inner)).__xray_error());
                        }
                    }
                }
            }
        }
    };

    let (create, run) = if sig.asyncness.is_some() {
        (
            quote!(::xray::__private::AsyncStepGuard::new(#span)),
            quote! {
                ::xray::__private::StepFuture::new(
                    #guard.span(),
                    ::xray::__private::typed_future::<#ret, _>(async move #block),
                ).await
            },
        )
    } else {
        (
            quote!(::xray::__private::StepGuard::enter(#span)),
            quote!(::xray::__private::run::<#ret, _>(|| #block)),
        )
    };

    Ok(quote! {
        #(#outer_attrs)*
        #vis #sig {
            #(#inner_attrs)*
            #[allow(unused_imports)]
            use ::xray::__private::{
                ErrViaDebug as _, ErrViaDisplay as _, ErrViaType as _, ViaDebug as _,
                ViaNothing as _, ViaSerialize as _,
            };
            let #guard = #create;
            #record
            match #run {
                ::core::result::Result::Ok(#value) => {
                    #on_return
                    #value
                }
                ::core::result::Result::Err(#panic) => {
                    #guard.panicked(&*#panic);
                    ::std::panic::resume_unwind(#panic)
                }
            }
        }
    })
}

/// Checks that a name in `skip(..)` is an argument of the function.
fn check_skipped(
    skipped: &Ident,
    has_receiver: bool,
    bindings: &[Ident],
    function: &Ident,
) -> syn::Result<()> {
    let name = key(skipped);
    if name == "self" {
        return if has_receiver {
            Ok(())
        } else {
            Err(Error::new(
                skipped.span(),
                format!("`{function}` has no `self` argument to skip"),
            ))
        };
    }
    if bindings.iter().any(|b| key(b) == name) {
        return Ok(());
    }
    let known: Vec<String> = bindings.iter().map(key).collect();
    let hint = if known.is_empty() {
        format!("`{function}` has no arguments")
    } else {
        format!("its arguments are: {}", known.join(", "))
    };
    Err(Error::new(
        skipped.span(),
        format!("cannot skip `{name}`: `{function}` has no argument named `{name}`; {hint}"),
    ))
}

/// The `tracing::span!` invocation for the attribute's span.
fn span_expression(kind: Kind, options: &Options, function: &Ident) -> TokenStream {
    let name = options.name.clone().unwrap_or_else(|| key(function));
    let name = LitStr::new(&name, Span::call_site());
    let level = &options.level;
    match kind {
        Kind::Step => {
            let kind = LitStr::new(options.kind.as_deref().unwrap_or(""), Span::call_site());
            let capture = LitStr::new(options.capture.as_deref().unwrap_or(""), Span::call_site());
            quote! {
                ::xray::__private::tracing::span!(
                    target: ::core::module_path!(),
                    #level,
                    #name,
                    xray.step = #name,
                    xray.kind = #kind,
                    xray.capture = #capture,
                    // The values above are literals: the layer need not compare them span by
                    // span (and other layers do not print an empty field).
                    xray.constant = ::xray::__private::tracing::field::Empty
                )
            }
        }
        Kind::Execution => {
            let tags = LitStr::new(&json_array(&options.tags), Span::call_site());
            quote! {
                ::xray::__private::tracing::span!(
                    target: ::core::module_path!(),
                    #level,
                    #name,
                    xray.execution = #name,
                    xray.tags = #tags
                )
            }
        }
    }
}

/// The JSON text of an array of strings.
fn json_array(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_json() {
        assert_eq!(json_array(&[]), "[]");
        assert_eq!(
            json_array(&["a".into(), "q\"b\\\n".into()]),
            r#"["a","q\"b\\\n"]"#
        );
    }

    #[test]
    fn result_detection() {
        let ty: Type = syn::parse_quote!(std::io::Result<u32>);
        assert!(matches!(result_ok_type(&ty), Some(Some(_))));
        let ty: Type = syn::parse_quote!(anyhow::Result);
        assert!(matches!(result_ok_type(&ty), Some(None)));
        let ty: Type = syn::parse_quote!(Vec<u32>);
        assert!(result_ok_type(&ty).is_none());
    }

    #[test]
    fn impl_trait_becomes_inferred() {
        let ret: ReturnType = syn::parse_quote!(-> Result<impl Iterator<Item = u32>, String>);
        let (pinned, output) = classify_output(&ret, true);
        assert_eq!(pinned.to_string(), "Result < _ , String >");
        assert!(matches!(output, Output::Result(None)));
    }

    #[test]
    fn destructured_bindings_are_recorded() {
        let pat: Pat = syn::parse_quote!((a, Point { x, y: ref mut why }, [first, ..]));
        let mut out = Vec::new();
        bound_identifiers(&pat, &mut out);
        let names: Vec<String> = out.iter().map(key).collect();
        assert_eq!(names, ["a", "x", "why", "first"]);
    }
}
