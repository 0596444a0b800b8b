#!/usr/bin/env bash
# Runs walden-core's and walden-sim's tests under Miri (nightly), with proptest reduced to a few
# cases per property: Miri interprets every instruction, so full-size property runs take hours.
# Usage: scripts/miri.sh [extra cargo test args]
# Tests that loop over many inputs take a sample of them under Miri (`cfg!(miri)`): Miri looks
# for undefined behaviour, which the code's paths decide, not for wrong answers, which the
# native run checks with every input. To see which tests take the time:
#   cargo +nightly miri test -p walden-core --lib -- -Zunstable-options --report-time --test-threads 1
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/need.sh
need_nightly miri rust-src
export PROPTEST_CASES="${PROPTEST_CASES:-4}"
# proptest reads the clock and the OS RNG for its seed; isolation would forbid both.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri"
start=$(date +%s)
cargo +nightly miri test -p walden-core -p walden-sim "$@"
echo "miri: done in $(( $(date +%s) - start ))s"
