//! Reading the calling crate's `Cargo.toml`: under which name, and in which section, it
//! lists a crate.
//!
//! The section matters: a crate listed only in `[dev-dependencies]` is there when tests and
//! examples are built, not when the library or a binary is, and a macro cannot tell which
//! target it is expanding in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item};

/// How surely a listed crate is there when the caller's code is compiled, least sure first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// In `[dev-dependencies]` only: tests, examples and benches.
    Dev,
    /// `optional = true`, or in `[target.'cfg(..)'.dependencies]`: some builds.
    Conditional,
    /// In `[dependencies]`, or the calling crate itself: every build.
    Normal,
}

/// A crate as the caller names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Its name in paths: `web_tasks` for `web-tasks = { package = "axum-durable" }`.
    pub(crate) name: String,
    /// The surest of its entries.
    pub(crate) kind: Kind,
}

/// One dependency entry.
struct Entry {
    /// The key, as written (`web-tasks`).
    key: String,
    /// The package it names (`axum-durable`).
    package: String,
    kind: Kind,
}

/// The dependencies of the calling crate.
pub(crate) struct Manifest {
    path: PathBuf,
    package: Option<String>,
    entries: Vec<Entry>,
}

impl Manifest {
    /// The manifest of the crate being compiled (`CARGO_MANIFEST_DIR`); `None` when there is
    /// none to read (a build without Cargo).
    pub(crate) fn of_caller() -> Option<Self> {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
        let path = Path::new(&dir).join("Cargo.toml");
        let doc = read(&path)?;
        Some(Self::parse(path, &doc))
    }

    /// The dependencies listed in `doc`, the manifest at `path`. `workspace = true` entries
    /// take their package from the workspace's `[workspace.dependencies]`.
    pub(crate) fn parse(path: PathBuf, doc: &DocumentMut) -> Self {
        let package = doc
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(Item::as_str)
            .map(str::to_owned);
        let mut tables: Vec<(&Item, Kind)> = Vec::new();
        for (name, kind) in [
            ("dependencies", Kind::Normal),
            ("dev-dependencies", Kind::Dev),
            ("dev_dependencies", Kind::Dev),
        ] {
            tables.extend(doc.get(name).map(|t| (t, kind)));
        }
        if let Some(targets) = doc.get("target").and_then(Item::as_table_like) {
            for (_, target) in targets.iter() {
                for (name, kind) in [
                    ("dependencies", Kind::Conditional),
                    ("dev-dependencies", Kind::Dev),
                    ("dev_dependencies", Kind::Dev),
                ] {
                    tables.extend(target.get(name).map(|t| (t, kind)));
                }
            }
        }

        let mut workspace: Option<BTreeMap<String, String>> = None;
        let mut entries = Vec::new();
        for (table, kind) in tables {
            let Some(table) = table.as_table_like() else {
                continue;
            };
            for (key, value) in table.iter() {
                let inherited = value
                    .get("workspace")
                    .and_then(Item::as_bool)
                    .unwrap_or(false);
                let package = if inherited {
                    // A member's key is the workspace's key; a rename is made there.
                    let renames = workspace.get_or_insert_with(|| workspace_packages(&path, doc));
                    renames.get(key).cloned()
                } else {
                    value
                        .get("package")
                        .and_then(Item::as_str)
                        .map(str::to_owned)
                };
                let optional = value
                    .get("optional")
                    .and_then(Item::as_bool)
                    .unwrap_or(false);
                entries.push(Entry {
                    key: key.to_owned(),
                    package: package.unwrap_or_else(|| key.to_owned()),
                    kind: if optional {
                        kind.min(Kind::Conditional)
                    } else {
                        kind
                    },
                });
            }
        }
        Self {
            path,
            package,
            entries,
        }
    }

    /// The manifest's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// How the caller lists `package`: the surest of its entries (a crate can be in several
    /// sections, under several names), or the caller itself.
    pub(crate) fn find(&self, package: &str) -> Option<Listed> {
        if self.package.as_deref() == Some(package) {
            // Its own tests, examples and doctests reach the library by its name.
            return Some(Listed {
                name: identifier(package),
                kind: Kind::Normal,
            });
        }
        self.entries
            .iter()
            .filter(|entry| entry.package == package)
            .max_by_key(|entry| entry.kind)
            .map(|entry| Listed {
                name: identifier(&entry.key),
                kind: entry.kind,
            })
    }
}

/// The name of a crate in paths: `-` becomes `_`.
fn identifier(name: &str) -> String {
    name.replace('-', "_")
}

fn read(path: &Path) -> Option<DocumentMut> {
    std::fs::read_to_string(path).ok()?.parse().ok()
}

/// The package of every key of `[workspace.dependencies]` in the workspace of the manifest
/// at `path`: the manifest itself if it has a `[workspace]`, else `package.workspace`, else
/// the nearest parent directory whose `Cargo.toml` has one (where Cargo looks).
fn workspace_packages(path: &Path, doc: &DocumentMut) -> BTreeMap<String, String> {
    if doc.contains_key("workspace") {
        return dependency_packages(doc);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let root = match doc
        .get("package")
        .and_then(|p| p.get("workspace"))
        .and_then(Item::as_str)
    {
        Some(root) => read(&dir.join(root).join("Cargo.toml")),
        None => dir
            .ancestors()
            .skip(1)
            .filter_map(|dir| read(&dir.join("Cargo.toml")))
            .find(|doc| doc.contains_key("workspace")),
    };
    root.map(|root| dependency_packages(&root))
        .unwrap_or_default()
}

/// `[workspace.dependencies]` of a workspace root: key -> package.
fn dependency_packages(root: &DocumentMut) -> BTreeMap<String, String> {
    root.get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(Item::as_table_like)
        .map(|deps| {
            deps.iter()
                .map(|(key, value)| {
                    let package = value.get("package").and_then(Item::as_str).unwrap_or(key);
                    (key.to_owned(), package.to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{Kind, Listed, Manifest};
    use std::path::PathBuf;

    fn manifest(text: &str) -> Manifest {
        let doc = text.parse().expect("valid TOML");
        Manifest::parse(PathBuf::from("/nowhere/app/Cargo.toml"), &doc)
    }

    fn listed(name: &str, kind: Kind) -> Listed {
        Listed {
            name: name.to_owned(),
            kind,
        }
    }

    #[test]
    fn sections_decide_the_kind() {
        let m = manifest(
            r#"
            [package]
            name = "user-app"

            [dependencies]
            axum-durable = "0.1"
            serde = { version = "1", optional = true }

            [dev-dependencies]
            durable-core = "0.1"
            serde = "1"
            tokio.version = "1"

            [target.'cfg(unix)'.dependencies]
            durable-sqlx = "0.1"

            [build-dependencies]
            cc = "1"
            "#,
        );
        assert_eq!(
            m.find("axum-durable"),
            Some(listed("axum_durable", Kind::Normal))
        );
        assert_eq!(
            m.find("durable-core"),
            Some(listed("durable_core", Kind::Dev))
        );
        // The surest entry wins: optional in `[dependencies]` beats dev-only.
        assert_eq!(m.find("serde"), Some(listed("serde", Kind::Conditional)));
        assert_eq!(m.find("tokio"), Some(listed("tokio", Kind::Dev)));
        assert_eq!(
            m.find("durable-sqlx"),
            Some(listed("durable_sqlx", Kind::Conditional))
        );
        assert_eq!(m.find("cc"), None);
        assert_eq!(m.find("user-app"), Some(listed("user_app", Kind::Normal)));
    }

    #[test]
    fn renames_are_followed() {
        let m = manifest(
            r#"
            [package]
            name = "user-app"

            [dependencies]
            web-tasks = { package = "axum-durable", version = "0.1" }

            [dev-dependencies]
            dc = { package = "durable-core", version = "0.1" }
            "#,
        );
        assert_eq!(
            m.find("axum-durable"),
            Some(listed("web_tasks", Kind::Normal))
        );
        assert_eq!(m.find("durable-core"), Some(listed("dc", Kind::Dev)));
        assert_eq!(m.find("web-tasks"), None);
    }

    #[test]
    fn workspace_entries_take_the_package_from_the_workspace() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[workspace]\nmembers = [\"app\"]\n\n[workspace.dependencies]\n\
             web-tasks = { package = \"axum-durable\", version = \"0.1\" }\nserde = \"1\"\n",
        )
        .expect("write workspace manifest");
        let app = dir.path().join("app");
        std::fs::create_dir(&app).expect("create member");
        let doc = "[package]\nname = \"app\"\n\n[dependencies]\nweb-tasks.workspace = true\n\
                   serde = { workspace = true }\n"
            .parse()
            .expect("valid TOML");
        let m = Manifest::parse(app.join("Cargo.toml"), &doc);
        assert_eq!(
            m.find("axum-durable"),
            Some(listed("web_tasks", Kind::Normal))
        );
        assert_eq!(m.find("serde"), Some(listed("serde", Kind::Normal)));
    }
}
