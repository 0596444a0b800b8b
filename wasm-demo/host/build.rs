//! Builds the demo guest (`wasm-demo/guest`) for `wasm32-wasip2`, so that one
//! `cargo run -p walden-demo-host` works on a fresh machine.
//!
//! The guest is a separate package (it has its own `[workspace]`), built by a nested cargo into
//! `<repo>/target/wasm-demo-guest`, away from the outer build's target directory and lock. The
//! path of the component is handed to the host as `WALDEN_GUEST_WASM`. Set
//! `WALDEN_GUEST_WASM` in the environment to use a prebuilt component instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    println!("cargo:rerun-if-env-changed=WALDEN_GUEST_WASM");
    if let Ok(prebuilt) = env::var("WALDEN_GUEST_WASM") {
        println!("cargo:rustc-env=WALDEN_GUEST_WASM={prebuilt}");
        return;
    }

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let repo = manifest_dir
        .ancestors()
        .nth(2)
        .expect("wasm-demo/host sits two levels below the repository root")
        .to_path_buf();
    let guest = repo.join("wasm-demo/guest");
    for watched in [
        guest.join("src"),
        guest.join("Cargo.toml"),
        guest.join("Cargo.lock"),
        repo.join("wasm-demo/limits.rs"),
        repo.join("core/src"),
        repo.join("core/Cargo.toml"),
        repo.join("adapters/wasi/src"),
        repo.join("adapters/wasi/Cargo.toml"),
        repo.join("tests/conformance/src"),
        repo.join("tests/conformance/Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }

    ensure_target();
    let target_dir = repo.join("target/wasm-demo-guest");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(guest.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer cargo's settings are for the host build; the nested one must not inherit them
    // (clippy's wrapper, host RUSTFLAGS, a target directory that another cargo holds locked).
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_LLVM_COV",
    ] {
        build.env_remove(var);
    }
    run(&mut build, "building the wasm demo guest");

    let wasm = target_dir
        .join(TARGET)
        .join("release/walden-demo-guest.wasm");
    assert!(
        wasm.is_file(),
        "the guest build succeeded but {} is missing",
        wasm.display()
    );
    println!("cargo:rustc-env=WALDEN_GUEST_WASM={}", wasm.display());
}

/// Adds the `wasm32-wasip2` standard library with rustup if the toolchain lacks it.
fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = sysroot.is_some_and(|root| has_target(&root));
    if !installed {
        println!("cargo:warning=adding the {TARGET} target with rustup");
        run(
            Command::new("rustup").args(["target", "add", TARGET]),
            "rustup target add wasm32-wasip2",
        );
    }
}

fn has_target(sysroot: &Path) -> bool {
    sysroot
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

fn run(command: &mut Command, what: &str) {
    // Anything the child prints on stdout would be read by cargo as build-script directives.
    let status = command
        .stdout(std::io::stderr())
        .status()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    assert!(status.success(), "{what}: {command:?} failed with {status}");
}
