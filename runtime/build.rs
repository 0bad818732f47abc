//! Builds the WebAssembly plugins in `plugins/` (the example plugins and the test plugins under
//! `plugins/testdata/`) and embeds their core modules in the `weir` binary.
//!
//! It runs `cargo build --release --target wasm32-unknown-unknown --workspace` on
//! `plugins/Cargo.toml` with its own target directory, `target/plugins` (the outer cargo holds
//! the lock on its own), copies every `<crate>.wasm` into `OUT_DIR` and writes
//! `OUT_DIR/plugins.rs`, which `src/plugins/embedded.rs` includes:
//!
//! ```ignore
//! pub static MODULES: &[(&str, &[u8])] = &[("normalize-payments", include_bytes!(..)), ..];
//! ```
//!
//! The modules stay core modules here; the host turns them into components when it loads them.
//!
//! It also compiles the gRPC API, `proto/weir/v1/weir.proto`, with `protox` (no `protoc`
//! needed) into tonic code and the encoded descriptor set that server reflection serves.

use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    compile_api();
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let repo = manifest_dir
        .parent()
        .expect("runtime/ sits in the repository")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));

    for watched in ["plugins", "plugin-sdk", "wit"] {
        watch(&repo.join(watched));
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/plugins/nested_cargo.rs");

    let workspace = repo.join("plugins");
    let manifest = workspace.join("Cargo.toml");
    let plugins = workspace_plugins(&workspace);

    check_wasm_target(&workspace);

    let target_dir = repo.join("target").join("plugins");
    let mut build = Command::new(&cargo);
    build
        .args(["build", "--release", "--workspace", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&workspace);
    scrub_cargo_env(&mut build);
    let output = build
        .output()
        .unwrap_or_else(|e| panic!("could not run {cargo:?} to build the plugins: {e}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if missing_target(&stderr) {
            format!(
                "\nthe {WASM_TARGET} target is not installed: run `rustup target add {WASM_TARGET}`"
            )
        } else {
            String::new()
        };
        panic!(
            "building the WebAssembly plugins failed ({}):\n{stderr}{hint}",
            output.status
        );
    }

    let built = target_dir.join(WASM_TARGET).join("release");
    let mut source = String::from(
        "/// The plugins built from `plugins/` (test plugins included), by name: core WebAssembly\n\
         /// modules carrying the WIT world in a `component-type` custom section.\n\
         pub static MODULES: &[(&str, &[u8])] = &[\n",
    );
    for name in &plugins {
        let module = built.join(format!("{}.wasm", name.replace('-', "_")));
        let embedded = out_dir.join(format!("{name}.wasm"));
        fs::copy(&module, &embedded).unwrap_or_else(|e| {
            panic!(
                "plugin {name}: cannot copy {} to OUT_DIR: {e}",
                module.display()
            )
        });
        writeln!(
            source,
            "    ({name:?}, include_bytes!({:?})),",
            embedded.display().to_string()
        )
        .expect("writing to a String");
    }
    source.push_str("];\n");
    fs::write(out_dir.join("plugins.rs"), source).expect("write OUT_DIR/plugins.rs");
}

/// Asks cargo to rerun this script when a file under `dir` that goes into a plugin changes:
/// every file but a `target` directory's (build output must not trigger a rebuild) and the test
/// vectors and docs, which the modules do not contain. A new source file is always named by a
/// file already watched (a `mod` line, a workspace's `members`), and a deleted one reruns it.
fn watch(dir: &Path) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if entry.file_name() != "target" {
                watch(&path);
            }
        } else if !path
            .extension()
            .is_some_and(|ext| ext == "jsonl" || ext == "md")
        {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// The `cdylib` members of the plugins workspace, by package name, in the order
/// `plugins/Cargo.toml` lists them.
fn workspace_plugins(workspace: &Path) -> Vec<String> {
    let manifest = read(&workspace.join("Cargo.toml"));
    let members = toml_string_array(&manifest, "members")
        .expect("plugins/Cargo.toml has a `members = [...]` array");
    let mut plugins = Vec::new();
    for member in members {
        let member_manifest = read(&workspace.join(&member).join("Cargo.toml"));
        if !member_manifest.contains("\"cdylib\"") {
            continue; // the SDK
        }
        let name = package_name(&member_manifest)
            .unwrap_or_else(|| panic!("plugins/{member}/Cargo.toml has no package name"));
        plugins.push(name);
    }
    assert!(
        !plugins.is_empty(),
        "plugins/Cargo.toml lists no cdylib member"
    );
    plugins
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The strings of the array `key = [ "a", "b", ... ]` (comments allowed between elements).
fn toml_string_array(manifest: &str, key: &str) -> Option<Vec<String>> {
    let start = manifest
        .lines()
        .scan(0, |offset, line| {
            let here = *offset;
            *offset += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| {
            let line = line.trim_start();
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })?
        .0;
    let rest = &manifest[start..];
    let open = rest.find('[')?;
    let close = rest.find(']')?;
    let body = &rest[open + 1..close];
    let strings = body
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.split(','))
        .map(|item| item.trim().trim_matches('"').to_owned())
        .filter(|item| !item.is_empty())
        .collect();
    Some(strings)
}

/// `name = "..."` of the `[package]` table.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some(value) = line
                .strip_prefix("name")
                .and_then(|rest| rest.trim_start().strip_prefix('='))
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// Adds the wasm target to the toolchain that builds `workspace` when it lacks it (a
/// toolchain installed before `rust-toolchain.toml` named the target does), so the README's
/// first command works on such a machine too; fails the build with the fix when it cannot.
fn check_wasm_target(workspace: &Path) {
    let mut installed = target_installed(workspace, WASM_TARGET);
    if !installed {
        let mut rustup = std::process::Command::new("rustup");
        rustup
            .args(["target", "add", WASM_TARGET])
            .current_dir(workspace);
        scrub_cargo_env(&mut rustup);
        let added = rustup.status().is_ok_and(|s| s.success());
        installed = added && target_installed(workspace, WASM_TARGET);
    }
    assert!(
        installed,
        "the {WASM_TARGET} target is not installed for the toolchain that builds plugins/; \
         run `rustup target add {WASM_TARGET}` (weir embeds WebAssembly plugins built for it)"
    );
}

fn missing_target(stderr: &str) -> bool {
    stderr.contains("target may not be installed")
        || stderr.contains("can't find crate for `core`")
        || stderr.contains("can't find crate for `std`")
}

include!("src/plugins/nested_cargo.rs");

fn compile_api() {
    println!("cargo:rerun-if-changed=proto");
    let fds = match protox::compile(["weir/v1/weir.proto"], ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("proto/weir/v1/weir.proto does not compile: {e}"),
    };
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let encoded = prost::Message::encode_to_vec(&fds);
    fs::write(out_dir.join("weir_v1_descriptor.bin"), encoded).expect("OUT_DIR is writable");
    if let Err(e) = tonic_prost_build::configure().compile_fds(fds) {
        panic!("cannot generate the gRPC code: {e}");
    }
}
