#!/usr/bin/env bash
# Packages every publishable library crate (and the CLI) exactly as `cargo publish` would, and
# builds each package from its packaged sources against the others (cargo's temporary registry
# overlay for unpublished workspace members). Usage: bash scripts/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
crates=(walden-crc32c walden-core walden-std walden-sim walden-wasi walden-flash walden-cli)
if [ -f integrations/openraft/Cargo.toml ]; then crates+=(walden-openraft); fi
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done
# Cargo unpacks the overlay's crates under $CARGO_HOME/registry/src/-<hash of the overlay path>/
# and never unpacks a name-version again once it is there, so a second run from the same path
# (a reused checkout, a CI machine's warm cache) verifies against the sources of the first run.
# Remove only our own crates' unpacked copies from those local-overlay directories.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
for dir in "$cargo_home"/registry/src/-*/ "$cargo_home"/registry/cache/-*/; do
    [ -d "$dir" ] || continue
    for c in "${crates[@]}"; do rm -rf "$dir$c"-[0-9]*; done
done
cargo package "${args[@]}" --allow-dirty --quiet
echo "packaged: ${crates[*]}"
