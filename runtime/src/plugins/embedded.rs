//! The WebAssembly plugins that ship inside the `weir` binary, and turning a plugin into a
//! component.
//!
//! `build.rs` compiles the `plugins/` workspace (the example plugins and the test plugins of
//! `plugins/testdata/`) for `wasm32-unknown-unknown` and embeds the core modules as
//! [`MODULES`]. A core module built with the guest SDK (`plugin-sdk/`) carries its WIT world in
//! a `component-type` custom section written by `wit-bindgen`; [`componentize`] reads that
//! section and wraps the module into a component the host can load.
//!
//! It owns bytes, not instances: it never compiles, links or runs a component (that is
//! [`super::wasm`]'s), and writes no file itself: `weir plugin build` saves what
//! [`build_crate`] returns.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::nested_cargo::{scrub_cargo_env, target_installed};

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// `\0asm`, version 1: a core module.
const CORE_HEADER: &[u8] = b"\0asm\x01\0\0\0";
/// `\0asm`, version 13, layer 1: a component.
const COMPONENT_HEADER: &[u8] = b"\0asm\x0d\0\x01\0";

/// Why a plugin crate could not be built, or a module turned into a component. Each message
/// says what to fix; a cause (an I/O or cargo error) is part of the message, not a
/// separate source, so a chain printer does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("not a WebAssembly module (bad magic number or version)")]
    NotWasm,
    #[error(
        "the module carries no WIT world: build it with weir-plugin-sdk (its \
         export_transform! or export_rule! embeds the world) for {WASM_TARGET}"
    )]
    NoWorld,
    #[error(
        "not a weir plugin module: {0} (build it with weir-plugin-sdk, which embeds the \
         WIT world, for {WASM_TARGET})"
    )]
    NotPluginModule(String),
    #[error(
        "the module does not implement a weir:plugin world: {0} (a plugin exports its \
         function with weir_plugin_sdk::export_transform! or export_rule!, and imports \
         nothing: build it for {WASM_TARGET}, not for WASI)"
    )]
    NoPluginWorld(String),
    #[error("cannot open plugin crate {dir}: {cause}")]
    OpenCrate { dir: PathBuf, cause: std::io::Error },
    #[error("{dir} is not a plugin crate: it has no Cargo.toml")]
    NoManifest { dir: PathBuf },
    #[error("cannot run {cargo}: {cause} (is cargo installed?)")]
    RunCargo {
        cargo: String,
        cause: std::io::Error,
    },
    #[error("cargo build of {dir} failed ({status}):\n{tail}")]
    CargoBuild {
        dir: PathBuf,
        status: std::process::ExitStatus,
        /// The last lines cargo printed on stderr.
        tail: String,
    },
    #[error("cargo build succeeded but {path} is unreadable: {cause}")]
    ModuleUnreadable {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot run cargo metadata: {0} (is cargo installed?)")]
    RunMetadata(std::io::Error),
    #[error("cargo metadata failed on {manifest}: {stderr}")]
    Metadata { manifest: PathBuf, stderr: String },
    #[error("cargo metadata printed something unreadable: {0}")]
    MetadataUnreadable(serde_json::Error),
    #[error("cargo metadata gave no target directory")]
    NoTargetDirectory,
    #[error("{manifest}: {cause}")]
    Manifest {
        manifest: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{manifest} is a workspace manifest, not a plugin crate: point at the plugin's own \
         directory"
    )]
    WorkspaceManifest { manifest: PathBuf },
    #[error(
        "{package} builds no WebAssembly module: add `[lib] crate-type = \
         [\"cdylib\"]` to its Cargo.toml"
    )]
    NoCdylib { package: String },
    #[error("the {WASM_TARGET} target is not installed: run `rustup target add {WASM_TARGET}`")]
    NoWasmTarget,
}

impl BuildError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            BuildError::NotWasm => "not_wasm",
            BuildError::NoWorld => "no_wit_world",
            BuildError::NotPluginModule(_) => "not_a_plugin_module",
            BuildError::NoPluginWorld(_) => "no_plugin_world_implemented",
            BuildError::OpenCrate { .. } => "open_crate",
            BuildError::NoManifest { .. } => "no_manifest",
            BuildError::RunCargo { .. } => "run_cargo",
            BuildError::CargoBuild { .. } => "cargo_build",
            BuildError::ModuleUnreadable { .. } => "module_unreadable",
            BuildError::RunMetadata(_) => "run_cargo_metadata",
            BuildError::Metadata { .. } => "cargo_metadata",
            BuildError::MetadataUnreadable(_) => "cargo_metadata_unreadable",
            BuildError::NoTargetDirectory => "no_target_directory",
            BuildError::Manifest { .. } => "manifest",
            BuildError::WorkspaceManifest { .. } => "workspace_manifest",
            BuildError::NoCdylib { .. } => "no_cdylib",
            BuildError::NoWasmTarget => "no_wasm_target",
        }
    }
}

/// Turns a core module built against the WIT (with wit-bindgen's embedded type section) into a
/// component. Bytes that already are a component are returned unchanged: the host checks what
/// any component imports and exports when it loads it.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, BuildError> {
    match core.get(..8) {
        Some(header) if header == CORE_HEADER => {}
        Some(header) if header == COMPONENT_HEADER => return Ok(core.to_vec()),
        _ => return Err(BuildError::NotWasm),
    }
    if !has_component_type(core) {
        return Err(BuildError::NoWorld);
    }
    let mut encoder = wit_component::ComponentEncoder::default()
        .module(core)
        .map_err(|e| BuildError::NotPluginModule(format!("{e:#}")))?
        .validate(true);
    encoder
        .encode()
        .map_err(|e| BuildError::NoPluginWorld(format!("{e:#}")))
}

/// Whether a core module has a `component-type*` custom section: the WIT world `wit-bindgen`
/// embeds, which [`wit_component::ComponentEncoder`] reads. Without one the encoder would make
/// an empty component.
fn has_component_type(module: &[u8]) -> bool {
    let mut rest = module.get(CORE_HEADER.len()..).unwrap_or_default();
    while let Some((&id, after_id)) = rest.split_first() {
        let Some((size, len)) = leb128_u32(after_id) else {
            return false;
        };
        let Some(body) = after_id.get(len..len + size) else {
            return false;
        };
        if id == 0
            && let Some((name_size, name_len)) = leb128_u32(body)
            && body
                .get(name_len..name_len + name_size)
                .is_some_and(|name| name.starts_with(b"component-type"))
        {
            return true;
        }
        rest = &after_id[len + size..];
    }
    false
}

/// An unsigned LEB128 `u32` at the start of `bytes`: its value and its length in bytes.
fn leb128_u32(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, byte) in bytes.iter().take(5).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The embedded plugin `name` as a component.
pub fn component(name: &str) -> Option<Vec<u8>> {
    let (_, module) = MODULES.iter().find(|(n, _)| *n == name)?;
    // The tests below componentize every embedded module, so this cannot fail in a build
    // that passed them.
    Some(componentize(module).unwrap_or_else(|e| panic!("embedded plugin {name}: {e}")))
}

/// Builds a plugin crate directory into a component: `cargo build --release --target
/// wasm32-unknown-unknown` (into the target directory of the crate's workspace), then
/// [`componentize`]. Errors say what to fix.
pub fn build_crate(dir: &Path) -> Result<Vec<u8>, BuildError> {
    // Cargo runs inside the crate, so a relative path must not be taken relative to it.
    let dir = &std::path::absolute(dir).map_err(|cause| BuildError::OpenCrate {
        dir: dir.to_owned(),
        cause,
    })?;
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::NoManifest {
            dir: dir.to_owned(),
        });
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let (lib_name, target_dir) = locate_cdylib(&cargo, &manifest)?;
    check_wasm_target(dir)?;

    let mut build = Command::new(&cargo);
    build
        .args(["build", "--release", "--lib", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .current_dir(dir);
    scrub_cargo_env(&mut build);
    let output = build.output().map_err(|cause| BuildError::RunCargo {
        cargo: cargo.display().to_string(),
        cause,
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(BuildError::CargoBuild {
            dir: dir.to_owned(),
            status: output.status,
            tail: tail.join("\n"),
        });
    }

    let module_path = target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", lib_name.replace('-', "_")));
    let core = std::fs::read(&module_path).map_err(|cause| BuildError::ModuleUnreadable {
        path: module_path.clone(),
        cause,
    })?;
    componentize(&core)
}

/// The `cdylib` target's name of the package `manifest` and the target directory of its
/// workspace, from `cargo metadata`.
fn locate_cdylib(
    cargo: &std::ffi::OsStr,
    manifest: &Path,
) -> Result<(String, PathBuf), BuildError> {
    let mut metadata = Command::new(cargo);
    metadata
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .arg("--manifest-path")
        .arg(manifest)
        .current_dir(manifest.parent().unwrap_or(Path::new(".")));
    scrub_cargo_env(&mut metadata);
    let output = metadata.output().map_err(BuildError::RunMetadata)?;
    if !output.status.success() {
        return Err(BuildError::Metadata {
            manifest: manifest.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(BuildError::MetadataUnreadable)?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or(BuildError::NoTargetDirectory)?;
    let wanted = manifest
        .canonicalize()
        .map_err(|cause| BuildError::Manifest {
            manifest: manifest.to_owned(),
            cause,
        })?;
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["manifest_path"]
                .as_str()
                .and_then(|m| Path::new(m).canonicalize().ok())
                .is_some_and(|m| m == wanted)
        })
        .ok_or_else(|| BuildError::WorkspaceManifest {
            manifest: manifest.to_owned(),
        })?;
    let package_name = package["name"].as_str().unwrap_or("the crate");
    let cdylib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["crate_types"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
        })
        .and_then(|t| t["name"].as_str())
        .ok_or_else(|| BuildError::NoCdylib {
            package: package_name.to_owned(),
        })?;
    Ok((cdylib.to_owned(), target_dir))
}

/// Fails with the fix when the toolchain that builds `dir` lacks the wasm target.
fn check_wasm_target(dir: &Path) -> Result<(), BuildError> {
    if target_installed(dir, WASM_TARGET) {
        Ok(())
    } else {
        Err(BuildError::NoWasmTarget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::types::ComponentItem;
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Config, Engine, Store};

    const TRANSFORMS: &[&str] = &[
        "normalize-payments",
        "sku-canonicalize",
        "hostile-loop",
        "hostile-memory",
        "hostile-stack",
        "hostile-trap",
        "hostile-output",
        "fuel-burner",
        "hostile-fanout",
    ];
    const RULES: &[&str] = &[
        "velocity",
        "card-testing",
        "amount-anomaly",
        "velocity-v2",
        "failing-rule",
    ];

    fn engine() -> Engine {
        Engine::new(Config::new().wasm_component_model(true)).expect("engine")
    }

    #[test]
    fn every_plugin_is_embedded() {
        let mut names: Vec<&str> = MODULES.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let mut want: Vec<&str> = TRANSFORMS.iter().chain(RULES).copied().collect();
        want.sort_unstable();
        assert_eq!(names, want);
    }

    /// Every embedded module componentizes, and its component exports its world's one function
    /// and imports no function, resource or module: at most the types of `weir:plugin/types`,
    /// which carry no capability. It instantiates with an empty linker.
    #[test]
    fn embedded_modules_are_sandboxed_components() {
        let engine = engine();
        for (name, module) in MODULES {
            let bytes = componentize(module).unwrap_or_else(|e| panic!("{name}: {e}"));
            let loaded = Component::new(&engine, &bytes)
                .unwrap_or_else(|e| panic!("{name}: wasmtime rejects the component: {e:#}"));
            let ty = loaded.component_type();
            for (import, item) in ty.imports(&engine) {
                let types_only = match &item.ty {
                    ComponentItem::Type(_) => true,
                    ComponentItem::ComponentInstance(instance) => instance
                        .exports(&engine)
                        .all(|(_, item)| matches!(item.ty, ComponentItem::Type(_))),
                    _ => false,
                };
                assert!(types_only, "{name} imports {import}: {:?}", item.ty);
            }
            let exports: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_owned()).collect();
            let function = if TRANSFORMS.contains(name) {
                "transform"
            } else {
                "evaluate"
            };
            assert!(
                exports.iter().any(|e| e == function),
                "{name} exports {exports:?}, not {function}"
            );
            let mut store = Store::new(&engine, ());
            Linker::<()>::new(&engine)
                .instantiate(&mut store, &loaded)
                .unwrap_or_else(|e| panic!("{name}: instantiation with no imports: {e:#}"));
            assert_eq!(component(name).as_deref(), Some(bytes.as_slice()));
        }
        assert!(component("no-such-plugin").is_none());
    }

    #[test]
    fn build_crate_builds_what_is_embedded() {
        let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        let built = build_crate(&plugins.join("velocity")).expect("velocity builds");
        assert_eq!(Some(built), component("velocity"));

        let err = build_crate(&plugins.join("no-such-plugin"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no Cargo.toml"), "{err}");
        let err = build_crate(&plugins).unwrap_err().to_string();
        assert!(err.contains("workspace manifest"), "{err}");
    }

    #[test]
    fn componentize_explains_bad_input() {
        let err = componentize(b"not wasm").unwrap_err().to_string();
        assert!(err.contains("not a WebAssembly module"), "{err}");
        // A valid, empty core module: no world in it, nothing exported.
        let err = componentize(CORE_HEADER).unwrap_err().to_string();
        assert!(err.contains("no WIT world"), "{err}");
        // A truncated plugin module.
        let (_, module) = MODULES[0];
        let err = componentize(&module[..module.len() / 2])
            .unwrap_err()
            .to_string();
        assert!(err.contains("weir"), "{err}");
    }
}
