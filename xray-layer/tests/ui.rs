//! Compile-time behaviour of `#[xray::step]` and `#[xray::execution]`: what compiles
//! (`tests/ui/pass`) and the exact error a user sees for each mistake (`tests/ui/fail`, with the
//! messages pinned in the `.stderr` files next to them).
//!
//! Regenerate the pinned messages with `TRYBUILD=overwrite cargo test -p xray-layer --test ui`,
//! then read them: each must tell the user what is wrong and what to write instead.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
