#!/usr/bin/env bash
# Smoke-runs every fuzz target for a short time (default 30 s each) on the nightly toolchain,
# after generating the seed corpora from real logs. Usage: fuzz/smoke.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
# cargo-fuzz is installed inside the repository's own target directory, nowhere else.
tools="$(cd .. && pwd)/target/tools"
# libFuzzer is C++, built by libfuzzer-sys; the targets need the nightly toolchain.
. ../scripts/need.sh
need c++ g++
need_nightly
export PATH="$tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --root "$tools"
fi
# The corpus generator runs on the default toolchain without sanitizers.
cargo run -q --example make_corpus
# Build every target first, so a build failure is not mistaken for a finding.
cargo +nightly fuzz build
status=0
for t in $(cargo +nightly fuzz list); do
    echo "== $t (${secs}s)"
    start=$(date +%s)
    # -rss_limit_mb and -malloc_limit_mb catch unbounded allocation; -timeout catches hangs.
    if ! cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
        -print_final_stats=1 2>"fuzz-$t.log"; then
        echo "!! $t found a problem: see fuzz/fuzz-$t.log and fuzz/artifacts/$t/"
        status=1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs" "fuzz-$t.log" || true
    echo "   $(( $(date +%s) - start ))s"
done
exit $status
