// Shared by `build.rs` (through `include!`) and the `weir plugin build` command: both run a
// nested cargo for the plugins, which must not inherit the surrounding cargo's settings.
//
// It uses std alone and no `crate::` path, because `build.rs` compiles it outside the crate; it
// only prepares commands and asks rustc about a target, and never runs the nested cargo itself.

/// Removes the variables the outer cargo sets for this build script (and a few a user may
/// set for the host build) that would misdirect a nested cargo building another workspace for
/// another target.
pub(crate) fn scrub_cargo_env(command: &mut std::process::Command) {
    const EXACT: &[&str] = &[
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "PROFILE",
        "OPT_LEVEL",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "DEBUG",
        "NUM_JOBS",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_LINKER",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "CARGO_PKG_",
        "DEP_",
        "__CARGO",
    ];
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p)) {
            command.env_remove(key);
        }
    }
}

/// Whether the toolchain that builds in `dir` has the standard library of `target` (the
/// plugins' wasm target): asks that toolchain's rustc for its target libdir.
pub(crate) fn target_installed(dir: &std::path::Path, target: &str) -> bool {
    let mut rustc = std::process::Command::new("rustc");
    rustc
        .args(["--print", "target-libdir", "--target", target])
        .current_dir(dir);
    scrub_cargo_env(&mut rustc);
    rustc
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .and_then(|libdir| std::fs::read_dir(libdir).ok())
        .is_some_and(|mut entries| {
            entries
                .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libcore-")))
        })
}
