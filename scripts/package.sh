#!/usr/bin/env bash
# Packages every publishable library crate (and the CLI) exactly as `cargo publish` would, and
# builds each package from its packaged sources against the others (cargo's temporary registry
# overlay for unpublished workspace members). Usage: bash scripts/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
crates=(walden-core walden-std walden-sim walden-wasi walden-flash walden-cli)
if [ -f integrations/openraft/Cargo.toml ]; then crates+=(walden-openraft); fi
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done
cargo package "${args[@]}" --allow-dirty --quiet
echo "packaged: ${crates[*]}"
