//! The `Debug` implementation of the generated struct.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::Ident;

use crate::signature::Field;

/// A `Debug` implementation that shows the fields implementing `Debug` and `..` for the
/// others, so the struct is always `Debug` whatever its argument types.
pub(crate) fn debug_impl(ident: &Ident, fields: &[Field]) -> TokenStream {
    let struct_name = ident.unraw().to_string();
    let names = fields.iter().map(|f| f.ident.unraw().to_string());
    let fields = fields.iter().map(|f| &f.ident);
    quote! {
        impl ::core::fmt::Debug for #ident {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                struct __Field<'a, T>(&'a T);
                trait __ViaDebug {
                    fn __durable_fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result;
                }
                impl<T: ::core::fmt::Debug> __ViaDebug for &__Field<'_, T> {
                    fn __durable_fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        ::core::fmt::Debug::fmt(self.0, f)
                    }
                }
                trait __ViaOpaque {
                    fn __durable_fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result;
                }
                impl<T> __ViaOpaque for __Field<'_, T> {
                    fn __durable_fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        f.write_str("..")
                    }
                }
                struct __Show<F>(F);
                impl<F> ::core::fmt::Debug for __Show<F>
                where
                    F: ::core::ops::Fn(&mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result,
                {
                    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        (self.0)(f)
                    }
                }
                f.debug_struct(#struct_name)
                    #(
                        .field(#names, &__Show(|f: &mut ::core::fmt::Formatter<'_>| {
                            (&&__Field(&self.#fields)).__durable_fmt(f)
                        }))
                    )*
                    .finish()
            }
        }
    }
}
