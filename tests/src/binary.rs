//! Builds the example binaries once per test run and finds them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Cargo target directory the running test binary was built into, and the profile
/// directory name (`debug` for the test profile): a test binary lives in
/// `<target>/<profile>/deps/`, a binary of this crate (`cargo run --bin chaos`) in
/// `<target>/<profile>/`, so this works under any `CARGO_TARGET_DIR`.
pub fn target_dir() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("the test binary's own path is known");
    let dir = exe
        .parent()
        .expect("the binary lives in <target>/<profile>[/deps]");
    let profile_dir = if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().expect("<target>/<profile>/deps has a parent")
    } else {
        dir
    };
    let profile = profile_dir
        .file_name()
        .expect("<target>/<profile> has a name")
        .to_string_lossy()
        .into_owned();
    let target = profile_dir
        .parent()
        .expect("<target>/<profile> has a parent")
        .to_path_buf();
    (target, profile)
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the durable-tests crate sits inside the workspace")
}

/// Environment variable naming a prebuilt `example-signup` binary to test instead of building
/// one (for testing a release build or a patched copy).
pub const BINARY_ENV: &str = "DURABLE_TEST_SIGNUP_BIN";

/// Environment variable naming a prebuilt `example-rollout` binary, like [`BINARY_ENV`].
pub const ROLLOUT_BINARY_ENV: &str = "DURABLE_TEST_ROLLOUT_BIN";

/// Path of a freshly built `example-signup`, same profile as the tests (`debug`). The first
/// call runs `cargo build -p example-signup --bin example-signup` into the test run's target
/// directory; later calls (from any thread) reuse it. If [`BINARY_ENV`] is set, that binary
/// is used and nothing is built.
///
/// # Panics
///
/// If the build fails (its output is shown above the panic) or the binary is missing.
pub fn example_signup() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| build("example-signup", BINARY_ENV))
        .as_path()
}

/// Path of a freshly built `example-rollout` (the two-release service of the rolling-deploy
/// test), built like [`example_signup`]; [`ROLLOUT_BINARY_ENV`] names a prebuilt one.
///
/// # Panics
///
/// If the build fails or the binary is missing.
pub fn example_rollout() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| build("example-rollout", ROLLOUT_BINARY_ENV))
        .as_path()
}

/// Builds the binary `package` (named like its package) unless `prebuilt_env` names one.
fn build(package: &str, prebuilt_env: &str) -> PathBuf {
    if let Some(prebuilt) = std::env::var_os(prebuilt_env).filter(|v| !v.is_empty()) {
        let prebuilt = PathBuf::from(prebuilt);
        assert!(
            prebuilt.is_file(),
            "{prebuilt_env}={} is not a file",
            prebuilt.display()
        );
        eprintln!("testing the prebuilt {}", prebuilt.display());
        return prebuilt;
    }
    let (target, profile) = target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "building {package} ({profile}) into {} once for this test run...",
        target.display()
    );
    let started = std::time::Instant::now();
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--quiet", "-p", package, "--bin", package])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(workspace_root());
    match profile.as_str() {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run {} to build {package}: {e}", cargo.display()));
    assert!(
        status.success(),
        "`cargo build -p {package} --bin {package}` failed ({status}); see the compiler output \
         above. The whole-system tests need the example to compile."
    );
    let binary = target
        .join(&profile)
        .join(format!("{package}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "the build succeeded but {} does not exist",
        binary.display()
    );
    eprintln!("built {package} in {:.1?}", started.elapsed());
    binary
}
