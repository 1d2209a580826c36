//! Proves the documented `clippy.toml` recipe rejects raw `tokio::spawn`: runs
//! `cargo clippy --offline` on the standalone crate in `tests/lint-fixture`, once with the raw
//! spawns compiled in (must fail, naming the method and the recipe's reason) and once without
//! (must pass, an `#[expect]`-audited spawn included).
//!
//! Needs `cargo clippy` (the CI runs it anyway) and `tokio` in the local registry cache (the
//! workspace depends on it). The fixture is copied to a temporary directory so the run writes
//! nothing into the source tree and always starts from a fresh target directory (cargo does
//! not track `clippy.toml` changes).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lint-fixture");
const REASON: &str = "use `Durable::spawn` (persisted task) or `Durable::spawn_volatile`";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create fixture copy");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &target);
            }
        } else if entry.file_name() != "Cargo.lock" {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from(env!("CARGO")), PathBuf::from)
}

fn clippy(manifest_dir: &Path, target_dir: &Path, features: &[&str]) -> Output {
    let mut command = Command::new(cargo());
    command
        .arg("clippy")
        .arg("--offline")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"));
    for feature in features {
        command.args(["--features", feature]);
    }
    command
        .args(["--", "-D", "clippy::disallowed_methods"])
        .env("CARGO_TARGET_DIR", target_dir)
        // Settings of the outer build must not leak into the fixture's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CLIPPY_CONF_DIR");
    command
        .output()
        .expect("run `cargo clippy` (is clippy installed?)")
}

#[test]
fn disallowed_methods_recipe_rejects_raw_tokio_spawn() {
    let temp = tempfile::tempdir().expect("tempdir");
    let crate_dir = temp.path().join("lint-fixture");
    copy_dir(Path::new(FIXTURE), &crate_dir);
    let target_dir = temp.path().join("target");

    // 1. Raw spawns compiled in: clippy fails on each, with the recipe's reason.
    let out = clippy(&crate_dir, &target_dir, &["raw-spawn"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "clippy accepted raw `tokio::spawn`:\n{stderr}"
    );
    assert_eq!(
        stderr
            .matches("use of a disallowed method `tokio::spawn`")
            .count(),
        2,
        "both `tokio::spawn(..)` and `tokio::task::spawn(..)` must be flagged by the \
         `tokio::spawn` entry:\n{stderr}"
    );
    assert!(
        stderr.contains("use of a disallowed method `tokio::runtime::Handle::spawn`"),
        "`Handle::spawn` must be flagged:\n{stderr}"
    );
    assert_eq!(
        stderr.matches(REASON).count(),
        3,
        "each error must carry the reason:\n{stderr}"
    );

    // 2. Only the audited spawn: clippy passes (the `#[expect]` is fulfilled).
    let out = clippy(&crate_dir, &target_dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "clippy rejected the fixture without raw spawns:\n{stderr}"
    );
    assert!(!stderr.contains("disallowed"), "{stderr}");
}
