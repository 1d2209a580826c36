//! The paths of the crates the generated code names (the core crate and `serde`), from the
//! caller's `Cargo.toml`.
//!
//! Through `axum-durable` when the caller depends on it, at least as surely as on the other
//! candidate: `axum-durable` re-exports both crates in its hidden `__private` module, so an
//! application needs no other dependency. Otherwise the crate itself (`durable-core`-only
//! users). "As surely" compares sections (see [`Kind`](crate::manifest::Kind)): a crate in `[dependencies]` wins over
//! one in `[dev-dependencies]` only, which is absent when the library or a binary is built.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, ToTokens};

use crate::manifest::{Listed, Manifest};

/// The paths the generated code names.
pub(crate) struct CratePaths {
    /// The core crate (`::axum_durable::__private::durable_core`, `::durable_core`...).
    pub(crate) core: TokenStream,
    /// serde (`::axum_durable::__private::serde`, `::serde`...).
    pub(crate) serde: TokenStream,
}

impl CratePaths {
    /// The paths for the crate being compiled; `krate` is the `crate = "..."` argument.
    pub(crate) fn of_caller(krate: Option<&syn::Path>) -> syn::Result<Self> {
        Self::resolve(Manifest::of_caller().as_ref(), krate)
    }

    /// The paths for a caller whose manifest is `manifest` (`None`: none could be read, as
    /// in a build without Cargo; the usual dependency, `axum-durable`, is assumed).
    fn resolve(manifest: Option<&Manifest>, krate: Option<&syn::Path>) -> syn::Result<Self> {
        let Some(manifest) = manifest else {
            let private = quote!(::axum_durable::__private);
            return Ok(Self {
                core: krate
                    .map_or_else(|| quote!(#private::durable_core), ToTokens::to_token_stream),
                serde: quote!(#private::serde),
            });
        };
        let axum_durable = manifest.find("axum-durable");
        let private = |listed: &Listed| {
            let name = format_ident!("{}", listed.name);
            quote!(::#name::__private)
        };
        let direct = |listed: &Listed| {
            let name = format_ident!("{}", listed.name);
            quote!(::#name)
        };

        let core = match krate {
            Some(path) => path.to_token_stream(),
            None => match through(axum_durable.as_ref(), manifest.find("durable-core")) {
                Some(Route::Private(listed)) => {
                    let private = private(listed);
                    quote!(#private::durable_core)
                }
                Some(Route::Direct(listed)) => direct(&listed),
                None => {
                    return Err(syn::Error::new(
                        Span::call_site(),
                        format!(
                            "`#[task]` generates an implementation of `Task`, but neither \
                             `axum-durable` nor `durable-core` is a dependency in `{}`; add \
                             `axum-durable` to `[dependencies]`, or give the path of the core \
                             crate with `#[task(crate = \"path::to::durable_core\")]`",
                            manifest.path().display()
                        ),
                    ))
                }
            },
        };
        let serde = match through(axum_durable.as_ref(), manifest.find("serde")) {
            Some(Route::Private(listed)) => {
                let private = private(listed);
                quote!(#private::serde)
            }
            Some(Route::Direct(listed)) => direct(&listed),
            None => {
                return Err(syn::Error::new(
                    Span::call_site(),
                    format!(
                        "`#[task]` stores the arguments with serde, but neither `axum-durable` \
                         nor `serde` is a dependency in `{}`; add `serde = {{ version = \"1\", \
                         features = [\"derive\"] }}` to `[dependencies]`",
                        manifest.path().display()
                    ),
                ))
            }
        };
        Ok(Self { core, serde })
    }
}

/// Where a crate is reached.
enum Route<'a> {
    /// Through `axum-durable`'s `__private` module.
    Private(&'a Listed),
    /// Directly, as the caller lists it.
    Direct(Listed),
}

/// `axum-durable`'s re-export unless `direct` is listed more surely.
fn through(axum_durable: Option<&Listed>, direct: Option<Listed>) -> Option<Route<'_>> {
    match (axum_durable, direct) {
        (Some(axum), Some(direct)) if direct.kind > axum.kind => Some(Route::Direct(direct)),
        (Some(axum), _) => Some(Route::Private(axum)),
        (None, Some(direct)) => Some(Route::Direct(direct)),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::CratePaths;
    use crate::manifest::Manifest;
    use std::path::PathBuf;

    /// The (core, serde) paths for a caller with these `[dependencies]` and
    /// `[dev-dependencies]`, or the error message.
    fn paths(deps: &str, dev_deps: &str, krate: Option<&str>) -> Result<(String, String), String> {
        let text = format!(
            "[package]\nname = \"user-app\"\nversion = \"0.1.0\"\n\n\
             [dependencies]\n{deps}\n\n[dev-dependencies]\n{dev_deps}\n"
        );
        let doc = text.parse().expect("valid TOML");
        let manifest = Manifest::parse(PathBuf::from("/app/Cargo.toml"), &doc);
        let krate = krate.map(|k| syn::parse_str::<syn::Path>(k).expect("path"));
        CratePaths::resolve(Some(&manifest), krate.as_ref())
            .map(|p| {
                (
                    p.core.to_string().replace(' ', ""),
                    p.serde.to_string().replace(' ', ""),
                )
            })
            .map_err(|e| e.to_string())
    }

    fn pair(core: &str, serde: &str) -> (String, String) {
        (core.to_owned(), serde.to_owned())
    }

    const AD: &str = "axum-durable = \"0.1\"";
    const DC: &str = "durable-core = \"0.1\"";
    const SERDE: &str = "serde = \"1\"";
    const VIA_AD: (&str, &str) = (
        "::axum_durable::__private::durable_core",
        "::axum_durable::__private::serde",
    );

    #[test]
    fn axum_durable_is_enough() {
        assert_eq!(paths(AD, "", None), Ok(pair(VIA_AD.0, VIA_AD.1)));
        // Dev-only crates are absent from the library's build: not used.
        let dev = format!("{DC}\n{SERDE}");
        assert_eq!(paths(AD, &dev, None), Ok(pair(VIA_AD.0, VIA_AD.1)));
        // Normal dependencies on both: either path exists; axum-durable's is used.
        let all = format!("{AD}\n{DC}\n{SERDE}");
        assert_eq!(paths(&all, "", None), Ok(pair(VIA_AD.0, VIA_AD.1)));
        // Renamed.
        assert_eq!(
            paths(
                "web-tasks = { package = \"axum-durable\", version = \"0.1\" }",
                "",
                None
            ),
            Ok(pair(
                "::web_tasks::__private::durable_core",
                "::web_tasks::__private::serde"
            ))
        );
    }

    #[test]
    fn durable_core_users_need_serde() {
        let deps = format!("{DC}\n{SERDE}");
        assert_eq!(
            paths(&deps, "", None),
            Ok(pair("::durable_core", "::serde"))
        );
        assert_eq!(
            paths(
                "dc = { package = \"durable-core\", version = \"0.1\" }\n\
                 serde1 = { package = \"serde\", version = \"1\" }",
                "",
                None
            ),
            Ok(pair("::dc", "::serde1"))
        );
        // A library on durable-core whose tests use axum-durable: the library's paths.
        assert_eq!(
            paths(&deps, AD, None),
            Ok(pair("::durable_core", "::serde"))
        );
        // Optional axum-durable, required durable-core: the required one.
        let optional = format!("{deps}\naxum-durable = {{ version = \"0.1\", optional = true }}");
        assert_eq!(
            paths(&optional, "", None),
            Ok(pair("::durable_core", "::serde"))
        );

        let error = paths(DC, "", None).expect_err("no serde");
        assert!(
            error.contains("neither `axum-durable` nor `serde` is a dependency"),
            "{error}"
        );
    }

    #[test]
    fn tests_of_a_crate_with_dev_dependencies_only() {
        // Like this crate's own tests: everything in `[dev-dependencies]`.
        let dev = format!("{DC}\n{SERDE}");
        assert_eq!(paths("", &dev, None), Ok(pair("::durable_core", "::serde")));
    }

    #[test]
    fn the_crate_argument_sets_the_core_path() {
        assert_eq!(
            paths(AD, "", Some("::my_app::durable")),
            Ok(pair("::my_app::durable", VIA_AD.1))
        );
        assert_eq!(
            paths(SERDE, "", Some("::vendored::durable_core")),
            Ok(pair("::vendored::durable_core", "::serde"))
        );
    }

    #[test]
    fn neither_crate_is_an_error() {
        let error = paths(SERDE, "", None).expect_err("no core crate");
        assert!(
            error.contains("neither `axum-durable` nor `durable-core`"),
            "{error}"
        );
    }

    #[test]
    fn without_a_manifest_axum_durable_is_assumed() {
        let paths = CratePaths::resolve(None, None).expect("paths");
        assert_eq!(
            (
                paths.core.to_string().replace(' ', ""),
                paths.serde.to_string().replace(' ', "")
            ),
            (VIA_AD.0.to_owned(), VIA_AD.1.to_owned())
        );
    }
}
