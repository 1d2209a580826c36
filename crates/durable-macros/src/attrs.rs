//! The attributes of a `#[task]` function, sorted by the generated items they also apply to.
//!
//! The function keeps all of its attributes. The struct, its inherent `impl` and the block of
//! trait implementations are separate items, so an attribute that changes whether or how
//! they compile must be repeated on them:
//!
//! | on the function            | on the generated items                                     |
//! |----------------------------|------------------------------------------------------------|
//! | `#[cfg(..)]`               | every item (they exist exactly when the function does)     |
//! | `#[allow(..)]`             | every item (a lint allowed for a parameter is allowed for its field) |
//! | `#[expect(..)]`            | every item, as `#[allow(..)]` (the function fulfils the expectation; the generated items must not report it a second time, nor leave an expectation unfulfilled) |
//! | `#[deprecated..]`          | the struct (using the task warns; the generated impls allow `deprecated`) |
//! | `///` docs, `#[doc(..)]`   | the struct, before the generated paragraph                 |
//! | anything else              | the function only (`warn`/`deny`/`forbid` would clash with the generated `allow`s; `inline`, `must_use`, other macros concern the function) |
//!
//! `#[cfg_attr(..)]` is not listed: the compiler expands it (and evaluates `#[cfg]`) before it
//! calls an attribute macro, whichever side of `#[task]` it is written on, so the macro sees
//! the attributes it produced. Copying `#[cfg]` still keeps the items consistent with the
//! function should an outer `#[cfg]` reach the macro.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Attribute, Meta};

/// The function's attributes to repeat on the generated items.
#[derive(Default)]
pub(crate) struct FnAttrs {
    /// On every generated item: `cfg`, `allow`, `expect` turned into `allow`.
    pub(crate) every_item: Vec<TokenStream>,
    /// On the struct only: docs and `deprecated`.
    pub(crate) struct_only: Vec<TokenStream>,
    /// Whether the function has documentation text of its own (`///` or `#[doc = ".."]`).
    pub(crate) has_docs: bool,
}

impl FnAttrs {
    /// Sorts `attrs`, the function's outer attributes.
    pub(crate) fn of(attrs: &[Attribute]) -> Self {
        let mut sorted = Self::default();
        for attr in attrs {
            let path = attr.path();
            if path.is_ident("cfg") || path.is_ident("allow") {
                sorted.every_item.push(attr.to_token_stream());
            } else if path.is_ident("expect") {
                if let Meta::List(list) = &attr.meta {
                    let lints = &list.tokens;
                    sorted.every_item.push(quote!(#[allow(#lints)]));
                }
            } else if path.is_ident("deprecated") {
                sorted.struct_only.push(attr.to_token_stream());
            } else if path.is_ident("doc") {
                sorted.has_docs |= matches!(attr.meta, Meta::NameValue(_));
                sorted.struct_only.push(attr.to_token_stream());
            }
        }
        sorted
    }
}

#[cfg(test)]
mod tests {
    use super::FnAttrs;
    use syn::parse_quote;

    fn strings(tokens: &[proc_macro2::TokenStream]) -> Vec<String> {
        tokens.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn sorts_the_functions_attributes() {
        let func: syn::ItemFn = parse_quote! {
            /// Sends the email.
            #[cfg(feature = "mail")]
            #[allow(non_snake_case)]
            #[expect(clippy::too_many_arguments, reason = "legacy")]
            #[deprecated(note = "use v2")]
            #[doc(alias = "welcome")]
            #[deny(unused)]
            #[inline]
            #[must_use]
            async fn send(_state: (), userID: i64) {}
        };
        let sorted = FnAttrs::of(&func.attrs);
        assert_eq!(
            strings(&sorted.every_item),
            [
                "# [cfg (feature = \"mail\")]",
                "# [allow (non_snake_case)]",
                "# [allow (clippy :: too_many_arguments , reason = \"legacy\")]",
            ]
        );
        assert_eq!(
            strings(&sorted.struct_only),
            [
                "# [doc = r\" Sends the email.\"]",
                "# [deprecated (note = \"use v2\")]",
                "# [doc (alias = \"welcome\")]",
            ]
        );
        assert!(sorted.has_docs);

        let undocumented: syn::ItemFn = parse_quote! {
            #[doc(hidden)]
            async fn quiet(_state: ()) {}
        };
        let sorted = FnAttrs::of(&undocumented.attrs);
        assert!(!sorted.has_docs);
        assert_eq!(strings(&sorted.struct_only), ["# [doc (hidden)]"]);
    }
}
