#!/usr/bin/env bash
# Mutation testing of walden-core's durability decisions (issue 17). cargo-mutants changes the
# code one small edit at a time (a `<` for a `<=`, a function body for a constant, a deleted
# match arm) and runs the tests against each change; a change no test notices ("missed") is
# behaviour nothing pins. See docs/TESTING.md, "Mutation testing".
#
# Usage: scripts/mutants.sh [--wide] [--in-diff REF] [-- CARGO_MUTANTS_ARGS...]
#
#   (default)      what CI runs: the modules in .cargo/mutants.toml (recovery, format, the log
#                  state machine, the reader and cursor, checksums, config) against walden-core's
#                  own unit tests; fails below WALDEN_MUTANTS_MIN percent (default 90) caught.
#   --wide         every file of walden-core, against walden-core's tests and walden-tests'
#                  suites (conformance, crash explorer): hours, not minutes. Same threshold.
#   --in-diff REF  only mutants in lines of core/src changed since git REF (a branch's own work).
#   --broken       the checker's broken variant: two mutants of `crc32c` against a test filter
#                  that matches no test, so both survive; must fail (check.sh asserts it does).
#   -- ARGS        passed to cargo-mutants, e.g. `-- -F core/src/wal.rs` (a regex on the mutant's
#                  name) to run one file's mutants while writing tests.
#
# WALDEN_MUTANTS_JOBS (default 2) sets cargo-mutants' -j. Results go to target/mutants/.
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0
min=${WALDEN_MUTANTS_MIN:-90}
jobs=${WALDEN_MUTANTS_JOBS:-2}
wide=false
broken=false
diff_ref=
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --wide) wide=true ;;
        --broken) broken=true ;;
        --in-diff) diff_ref=${2:?--in-diff needs a git ref}; shift ;;
        --) shift; extra=("$@"); break ;;
        *) echo "unknown argument $1 (see the comment at the top of $0)" >&2; exit 64 ;;
    esac
    shift
done

# cargo-mutants is installed inside the repository's own target directory, nowhere else.
tools="$PWD/target/tools"
export PATH="$tools/bin:$PATH"
if ! cargo mutants --version 2>/dev/null | grep -qF "$version"; then
    cargo install cargo-mutants --version "$version" --locked --root "$tools"
fi

out=target/mutants
if $broken; then out=target/mutants-broken; fi
rm -rf "$out/mutants.out" "$out/mutants.out.old"
mkdir -p "$out"
# With compression, encryption, `alloc` (the replay's read-ahead window) and `hw-crc` (the
# accelerated checksums servers use) compiled in: otherwise the code behind those features
# would build unchanged under every mutant and count as missed.
args=(-p walden-core -j "$jobs" -o "$out" --no-shuffle --colors never
    --features walden-core/compress,walden-core/encrypt,walden-core/alloc,walden-core/hw-crc)
if $wide; then
    # Every file of the crate (added to examine_globs), and the cross-adapter suites too.
    args+=(-f 'core/src/**/*.rs' --test-package walden-core --test-package walden-tests)
fi
if $broken; then
    # No test runs, so nothing can catch a mutant: the score is 0 and this run must fail.
    args+=(-F 'replace crc32c -> u32' --cargo-test-arg no_test_has_this_name)
fi
if [ -n "$diff_ref" ]; then
    git diff "$diff_ref" -- core/src >"$out/changes.diff"
    if [ ! -s "$out/changes.diff" ]; then
        echo "no changes in core/src since $diff_ref: nothing to mutate"
        exit 0
    fi
    args+=(--in-diff "$out/changes.diff")
fi

started=$SECONDS
status=0
cargo mutants "${args[@]}" ${extra[@]+"${extra[@]}"} >"$out/run.log" 2>&1 || status=$?
# Exit codes: 0 all caught, 2 some missed, 3 some timed out; anything else is a failure of the
# run itself (the unmutated tree does not build or pass, bad arguments).
case $status in
    0 | 2 | 3) ;;
    *)
        tail -n 40 "$out/run.log"
        echo "cargo-mutants failed (exit $status); the whole output is in $out/run.log" >&2
        exit 1
        ;;
esac

res="$out/mutants.out"
count() { if [ -f "$res/$1.txt" ]; then grep -c . "$res/$1.txt" || true; else echo 0; fi; }
caught=$(count caught)
missed=$(count missed)
timeout=$(count timeout)
unviable=$(count unviable)

echo "per file (score = caught / (caught + missed)):"
for k in caught missed timeout unviable; do
    if [ -f "$res/$k.txt" ]; then awk -F: -v k="$k" '{print $1, k}' "$res/$k.txt"; fi
done | awk '{ n[$1 " " $2]++; files[$1] = 1 }
END {
    for (f in files) {
        c = n[f " caught"] + 0; m = n[f " missed"] + 0
        printf "  %-30s %6.1f%%  caught %3d  missed %3d  timeout %2d  unviable %2d\n",
            f, (c + m ? 100 * c / (c + m) : 100), c, m, n[f " timeout"] + 0, n[f " unviable"] + 0
    }
}' | sort
if [ "$missed" -gt 0 ]; then
    echo "missed (rerun one with: scripts/mutants.sh -- -F 'FILE:LINE:COL'):"
    sed 's/^/  /' "$res/missed.txt"
fi
if [ "$timeout" -gt 0 ]; then
    echo "timed out (a loop that no longer ends; the tests did not pass):"
    sed 's/^/  /' "$res/timeout.txt"
fi

total=$((caught + missed))
if [ "$total" -eq 0 ]; then
    echo "no viable mutants tested ($unviable unviable, $timeout timed out)"
    exit 0
fi
# Integer arithmetic: score in tenths of a percent.
tenths=$((caught * 1000 / total))
printf 'mutation score: %d.%d%% (%d caught, %d missed; %d timed out, %d unviable) in %d s\n' \
    $((tenths / 10)) $((tenths % 10)) "$caught" "$missed" "$timeout" "$unviable" \
    $((SECONDS - started)) | tee "$out/score.txt"
if [ "$tenths" -lt $((min * 10)) ]; then
    echo "mutation score below ${min}%: add tests that pin the missed behaviour (docs/TESTING.md)" >&2
    exit 1
fi
