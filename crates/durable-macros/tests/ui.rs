//! Compile tests of `#[task]` with trybuild: accepted signatures in `ui/pass` (compiled and
//! run), rejected ones in `ui/fail` with the expected messages in their `.stderr` files.
//!
//! Regenerate the `.stderr` files after a compiler upgrade with
//! `TRYBUILD=overwrite cargo test -p durable-macros --test ui`, then review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
