//! Finding the crates the generated code names, from the caller's `Cargo.toml`.

use proc_macro2::{Span, TokenStream};
use proc_macro_crate::{crate_name, Error, FoundCrate};
use quote::{format_ident, quote};

/// The path of the core crate (`durable_core`, or `axum_durable::core`) in the caller.
///
/// Order: the `crate = "..."` argument; else `durable-core` if the caller depends on it
/// directly (possibly renamed); else `axum-durable` (possibly renamed), through its `core`
/// re-export; else, when the manifest cannot be read (a build without Cargo),
/// `::axum_durable::core`.
pub(crate) fn core_crate(span: Span) -> syn::Result<TokenStream> {
    let direct = crate_name("durable-core");
    if let Ok(found) = &direct {
        return Ok(match found {
            FoundCrate::Itself => quote!(::durable_core),
            FoundCrate::Name(name) => {
                let name = format_ident!("{name}");
                quote!(::#name)
            }
        });
    }
    match crate_name("axum-durable") {
        Ok(FoundCrate::Name(name)) => {
            let name = format_ident!("{name}");
            Ok(quote!(::#name::core))
        }
        Err(Error::CrateNotFound { path, .. })
            if matches!(direct, Err(Error::CrateNotFound { .. })) =>
        {
            Err(syn::Error::new(
                span,
                format!(
                    "`#[task]` generates an implementation of `Task`, but neither `axum-durable` \
                     nor `durable-core` is a dependency in `{}`; add one of them, or give the \
                     path of the core crate with `#[task(crate = \"path::to::durable_core\")]`",
                    path.display()
                ),
            ))
        }
        // `axum-durable` itself (its tests and examples), or no readable manifest (a build
        // without Cargo): the usual path.
        Ok(FoundCrate::Itself) | Err(_) => Ok(quote!(::axum_durable::core)),
    }
}

/// The path of `serde` in the caller (the generated struct derives its traits).
pub(crate) fn serde_crate(span: Span) -> syn::Result<TokenStream> {
    match crate_name("serde") {
        Ok(FoundCrate::Name(name)) => {
            let name = format_ident!("{name}");
            Ok(quote!(::#name))
        }
        Err(Error::CrateNotFound { path, .. }) => Err(syn::Error::new(
            span,
            format!(
                "`#[task]` stores the arguments with serde, but `serde` is not a dependency in \
                 `{}`; add `serde = {{ version = \"1\", features = [\"derive\"] }}` to \
                 `[dependencies]`",
                path.display()
            ),
        )),
        // No readable manifest (a build without Cargo): assume the usual name.
        Ok(FoundCrate::Itself) | Err(_) => Ok(quote!(::serde)),
    }
}

#[cfg(test)]
mod tests {
    use super::{core_crate, serde_crate};
    use proc_macro2::Span;

    /// Runs `f` with `CARGO_MANIFEST_DIR` pointing at a crate whose `[dependencies]` are
    /// `deps`. One test function runs every case in turn: the variable is process-wide.
    fn with_manifest<T>(deps: &str, f: impl FnOnce() -> T) -> T {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = format!(
            "[package]\nname = \"user-app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{deps}\n"
        );
        std::fs::write(dir.path().join("Cargo.toml"), manifest).expect("write manifest");
        let previous = std::env::var_os("CARGO_MANIFEST_DIR");
        std::env::set_var("CARGO_MANIFEST_DIR", dir.path());
        let result = f();
        match previous {
            Some(value) => std::env::set_var("CARGO_MANIFEST_DIR", value),
            None => std::env::remove_var("CARGO_MANIFEST_DIR"),
        }
        result
    }

    fn core_path(deps: &str) -> Result<String, String> {
        with_manifest(deps, || {
            core_crate(Span::call_site())
                .map(|path| path.to_string().replace(' ', ""))
                .map_err(|e| e.to_string())
        })
    }

    fn serde_path(deps: &str) -> Result<String, String> {
        with_manifest(deps, || {
            serde_crate(Span::call_site())
                .map(|path| path.to_string().replace(' ', ""))
                .map_err(|e| e.to_string())
        })
    }

    #[test]
    fn crate_paths_follow_the_callers_manifest() {
        // The usual application: only axum-durable.
        assert_eq!(
            core_path("axum-durable = \"0.1\"").as_deref(),
            Ok("::axum_durable::core")
        );
        // A direct durable-core dependency wins (its path exists for sure).
        assert_eq!(
            core_path("axum-durable = \"0.1\"\ndurable-core = \"0.1\"").as_deref(),
            Ok("::durable_core")
        );
        // Renamed dependencies.
        assert_eq!(
            core_path("dc = { package = \"durable-core\", version = \"0.1\" }").as_deref(),
            Ok("::dc")
        );
        assert_eq!(
            core_path("web-tasks = { package = \"axum-durable\", version = \"0.1\" }").as_deref(),
            Ok("::web_tasks::core")
        );
        // Neither: a clear error.
        let error = core_path("serde = \"1\"").expect_err("no core crate");
        assert!(
            error.contains("neither `axum-durable` nor `durable-core`"),
            "{error}"
        );

        assert_eq!(serde_path("serde = \"1\"").as_deref(), Ok("::serde"));
        assert_eq!(
            serde_path("serde1 = { package = \"serde\", version = \"1\" }").as_deref(),
            Ok("::serde1")
        );
        let error = serde_path("axum-durable = \"0.1\"").expect_err("no serde");
        assert!(error.contains("`serde` is not a dependency"), "{error}");
    }
}
