//! Builds applications that depend on `axum-durable` only, as users do, and checks that the
//! code `#[task]` generates compiles in them: `cargo check --offline --all-targets` on the
//! workspace in `tests/paths-fixture`, with
//!
//! - `app`: `axum-durable` in `[dependencies]`, `durable-core`, `serde` and `serde_json` in
//!   `[dev-dependencies]` only (the library is built without them, its tests with them);
//! - `renamed-app`: `axum-durable` renamed to `web-tasks`, and nothing else.
//!
//! The manifests are written here (they need the absolute paths of the workspace's crates) in
//! a copy of the fixture, with the workspace's `Cargo.lock` so the build uses the locked
//! versions offline. The fixture's target directory lives under `CARGO_TARGET_TMPDIR`, so
//! dependencies are built once, not on every run.

use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/paths-fixture");
const CRATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const WORKSPACE_LOCK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock");

fn crate_dir(name: &str) -> String {
    let dir = Path::new(CRATES)
        .join(name)
        .canonicalize()
        .expect("workspace crate");
    // A TOML basic string: escape what could appear in a path.
    dir.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

fn manifest(name: &str, dependencies: &str, dev_dependencies: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\n{dependencies}\n\n[dev-dependencies]\n{dev_dependencies}\n"
    )
}

fn write(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create fixture dir");
    std::fs::write(path, contents).expect("write fixture file");
}

fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from(env!("CARGO")), PathBuf::from)
}

#[test]
fn tasks_compile_with_axum_durable_as_the_only_dependency() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path();
    let axum_durable = crate_dir("axum-durable");
    let durable_core = crate_dir("durable-core");

    write(
        &root.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"app\", \"renamed-app\"]\n",
    );
    std::fs::copy(WORKSPACE_LOCK, root.join("Cargo.lock")).expect("copy Cargo.lock");
    write(
        &root.join("app/Cargo.toml"),
        &manifest(
            "paths-fixture-app",
            &format!("axum-durable = {{ path = \"{axum_durable}\", default-features = false }}"),
            &format!(
                "durable-core = {{ path = \"{durable_core}\" }}\n\
                 serde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = \"1\""
            ),
        ),
    );
    write(
        &root.join("renamed-app/Cargo.toml"),
        &manifest(
            "paths-fixture-renamed-app",
            &format!(
                "web-tasks = {{ package = \"axum-durable\", path = \"{axum_durable}\", \
                 default-features = false }}"
            ),
            "",
        ),
    );
    for member in ["app", "renamed-app"] {
        let source = std::fs::read_to_string(Path::new(FIXTURE).join(member).join("src/lib.rs"))
            .expect("read fixture source");
        write(&root.join(member).join("src/lib.rs"), &source);
    }

    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("paths-fixture");
    let out = Command::new(cargo())
        .args([
            "check",
            "--offline",
            "--quiet",
            "--workspace",
            "--all-targets",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        // Settings of the outer build must not leak into the fixture's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .expect("run `cargo check`");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the fixture applications do not compile:\n{stderr}"
    );
}
