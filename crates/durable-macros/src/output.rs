//! Turning the function's output (`()`, `Result<(), E>`) into `Result<(), TaskError>`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{GenericArgument, PathArguments, ReturnType, Type};

/// Items turning the function's output into `Result<(), TaskError>`.
///
/// The output type is concrete (no generics are allowed), so "autoref specialization" picks,
/// in order: `()` -> `Ok(())`; `Result<(), TaskError>` -> unchanged (so a permanent error
/// stays permanent); `Result<(), E>` with `E: Into<Box<dyn Error + Send + Sync>>` ->
/// `TaskError::retryable(e)` (keeps the source chain); `Result<(), E: Display>` ->
/// `TaskError::retryable(e.to_string())`; anything else -> a clear trait error.
#[allow(clippy::too_many_lines)] // one `quote!` template
pub(crate) fn output_helpers(core: &TokenStream) -> TokenStream {
    quote! {
        struct __Tag<T>(::core::marker::PhantomData<T>);
        fn __tag<T>(_: &T) -> __Tag<T> {
            __Tag(::core::marker::PhantomData)
        }

        struct __Unit;
        impl __Unit {
            fn __durable_into(self, (): ()) -> ::core::result::Result<(), #core::TaskError> {
                ::core::result::Result::Ok(())
            }
        }
        struct __Pass;
        impl __Pass {
            fn __durable_into(
                self,
                result: ::core::result::Result<(), #core::TaskError>,
            ) -> ::core::result::Result<(), #core::TaskError> {
                result
            }
        }
        struct __Boxed;
        impl __Boxed {
            fn __durable_into<E>(
                self,
                result: ::core::result::Result<(), E>,
            ) -> ::core::result::Result<(), #core::TaskError>
            where
                E: ::core::convert::Into<
                    ::std::boxed::Box<
                        dyn ::std::error::Error + ::core::marker::Send + ::core::marker::Sync,
                    >,
                >,
            {
                result.map_err(#core::TaskError::retryable)
            }
        }
        struct __Shown;
        impl __Shown {
            fn __durable_into<E: ::core::fmt::Display>(
                self,
                result: ::core::result::Result<(), E>,
            ) -> ::core::result::Result<(), #core::TaskError> {
                result.map_err(|e| {
                    #core::TaskError::retryable(::std::string::ToString::to_string(&e))
                })
            }
        }

        #[diagnostic::on_unimplemented(
            message = "a `#[task]` function must return `()` or `Result<(), E>` where `E: Display`, not `{Self}`",
            label = "unsupported return type",
            note = "to fail without retrying, return `Result<(), TaskError>` and `Err(TaskError::permanent(..))`"
        )]
        trait __TaskOutput {
            fn __durable_into(self) -> ::core::result::Result<(), #core::TaskError>;
        }
        struct __Unsupported;
        impl __Unsupported {
            fn __durable_into<O: __TaskOutput>(
                self,
                output: O,
            ) -> ::core::result::Result<(), #core::TaskError> {
                output.__durable_into()
            }
        }

        trait __KindUnit {
            fn __durable_kind(&self) -> __Unit {
                __Unit
            }
        }
        impl __KindUnit for &&&__Tag<()> {}
        trait __KindPass {
            fn __durable_kind(&self) -> __Pass {
                __Pass
            }
        }
        impl __KindPass for &&&__Tag<::core::result::Result<(), #core::TaskError>> {}
        trait __KindBoxed {
            fn __durable_kind(&self) -> __Boxed {
                __Boxed
            }
        }
        impl<E> __KindBoxed for &&__Tag<::core::result::Result<(), E>>
        where
            E: ::core::convert::Into<
                ::std::boxed::Box<
                    dyn ::std::error::Error + ::core::marker::Send + ::core::marker::Sync,
                >,
            >,
        {
        }
        trait __KindShown {
            fn __durable_kind(&self) -> __Shown {
                __Shown
            }
        }
        impl<E: ::core::fmt::Display> __KindShown for &__Tag<::core::result::Result<(), E>> {}
        trait __KindUnsupported {
            fn __durable_kind(&self) -> __Unsupported {
                __Unsupported
            }
        }
        impl<T> __KindUnsupported for __Tag<T> {}
    }
}
/// Where an unsupported return type is reported: `E` in `Result<(), E>`, else the type.
pub(crate) fn output_span(output: &ReturnType) -> Option<Span> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    if let Type::Path(path) = &**ty {
        if let Some(PathArguments::AngleBracketed(args)) =
            path.path.segments.last().map(|s| &s.arguments)
        {
            if let Some(GenericArgument::Type(err)) = args.args.iter().nth(1) {
                return Some(err.span());
            }
        }
    }
    Some(ty.span())
}
