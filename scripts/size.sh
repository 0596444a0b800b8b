#!/usr/bin/env bash
# What Walden costs in flash on a Cortex-M4: the size program of embedded/ (open, 50 appends, a
# batch, sync, reopen with recovery, read everything back, truncate_front, over a RAM Storage)
# built for thumbv7em-none-eabihf with opt-level "z", LTO, one codegen unit and panic = "abort",
# minus the same program without the log. Counts .text + .rodata. Fails when a figure is over
# its budget. The fourth figure is the size program without walden-core's start slots (a log
# that never truncate_fronts); the last two are the first two with 16-entry checksum tables
# (walden-core's crc-small-tables).
#
# Usage: bash scripts/size.sh            measure and check the budgets
#        bash scripts/size.sh --broken   check against a 1-byte budget (must fail: proves the check can)
set -euo pipefail
cd "$(dirname "$0")/../embedded"

# Budgets in bytes (docs/EMBEDDED.md says where they come from and what the goal is).
# Each is a measured figure plus a margin (now about 1%): a ratchet, not the goal (12 KiB / 16 KiB). Set on the
# figures before early rotation (22,452 / 25,892 / 31,020 / 20,928); kept when walden-core's
# feature `early-rotation`, which the size program leaves out, brought them back to within 1.6%
# of those; kept again when the stack work of docs/EMBEDDED.md traded about 300 bytes of them
# for 312 bytes of `Wal::open`'s stack; lowered to the figures after the inlining work plus
# about 1% (2026-12-03 in brackets).
budget_one=${WALDEN_SIZE_BUDGET_ONE:-21750}   # walden-core, CRC-32C only (20,800; 20,996 before the stale-segment and start-slot checks of 2026-12-07, 21,532 after)
budget_all=${WALDEN_SIZE_BUDGET_ALL:-25180}   # walden-core, all three checksums (24,220; 24,396, then 24,932)
budget_flash=${WALDEN_SIZE_BUDGET_FLASH:-32190} # walden-core + walden-flash, the power-cut demo (31,872 with walden-flash's reserved spare area and core's checks of 2026-12-07; 31,108; 30,856 before the gaps at erase blocks; 30,796 before the search for other layouts' headers inside free areas; 30,428 before the checks of lying storage and the LSN and segment-id limits; 29,588 before walden-flash's hostile-input checks)
budget_front=${WALDEN_SIZE_BUDGET_NO_FRONT:-20300} # CRC-32C only, no start slots: no truncate_front (20,100 after the checks of 2026-12-07; 19,484; 19,684 after the orphan search began weighing the damaged place itself, 2026-12-04, which took it 4 bytes over 19,680)
budget_small=${WALDEN_SIZE_BUDGET_SMALL:-20690} # CRC-32C, 16-entry tables (19,784; 19,952, then 20,488)
budget_small_all=${WALDEN_SIZE_BUDGET_SMALL_ALL:-21190} # all three checksums, 16-entry tables (20,276; 20,448, then 20,984)
if [ "${1:-}" = "--broken" ]; then
  budget_one=1 budget_all=1 budget_flash=1 budget_front=1 budget_small=1 budget_small_all=1
fi

. ../scripts/need.sh
need readelf binutils
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true

elf=target/thumbv7em-none-eabihf/release/walden-embedded

# .text + .rodata of the ELF just built, in bytes.
code_size() {
  local total=0 hex
  for hex in $(readelf -S -W "$elf" | sed 's/\[ *\([0-9]*\)\]/[\1]/' \
      | awk '$2 == ".text" || $2 == ".rodata" { print $6 }'); do
    total=$((total + 0x$hex))
  done
  echo "$total"
}

build() { cargo build --release --quiet "$@"; code_size; }

base=$(build --no-default-features)
one=$(build)
all=$(build --features all-checksums)
flash=$(build --features flash)
front=$(build --no-default-features --features log)
small=$(build --features small-tables)
small_all=$(build --features all-checksums,small-tables)

fail=0
check() {
  local name=$1 bytes=$2 budget=$3
  local verdict=ok
  if [ "$bytes" -gt "$budget" ]; then verdict="OVER BUDGET"; fail=1; fi
  printf '%-44s %6d bytes (budget %6d) %s\n' "$name" "$bytes" "$budget" "$verdict"
}
echo "baseline program without the log: $base bytes of .text + .rodata"
check "walden-core, CRC-32C only" $((one - base)) "$budget_one"
check "walden-core, CRC-32C + CRC-32 + CRC-64" $((all - base)) "$budget_all"
check "walden-core + walden-flash (power-cut demo)" $((flash - base)) "$budget_flash"
check "walden-core, CRC-32C, no start slots" $((front - base)) "$budget_front"
check "walden-core, CRC-32C, 16-entry table" $((small - base)) "$budget_small"
check "walden-core, all checksums, 16-entry tables" $((small_all - base)) "$budget_small_all"
exit $fail
