#!/usr/bin/env bash
# Runs the embedded/ programs on an emulated Cortex-M4 (QEMU mps2-an386) and checks what they
# print over semihosting: the size program (RAM storage; again without walden-core's start
# slots, where truncate_front must be refused) and the power-cut demo (walden-flash on
# an emulated NOR flash, the power cut while an append is being programmed, recovery on the next
# boot). Installs Debian's qemu-system-arm when missing (scripts/need.sh: apt-get as root).
#
# Usage: bash scripts/qemu.sh            run all three and check their output and stack budgets
#        bash scripts/qemu.sh --broken   the same with 1-byte stack budgets (must fail: proves
#                                        the stack check can)
set -euo pipefail
cd "$(dirname "$0")/../embedded"

. ../scripts/need.sh
need qemu-system-arm qemu-system-arm
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true

# The most stack `Wal::open` (with recovery, N = 8) may use, in bytes: the measured figures of
# docs/EMBEDDED.md ("Stack") plus about 3%. The goal of issue 15 is 2048 for the size program,
# which it meets exactly (2,048 with and without start slots); the margin is the ratchet's.
stack_budget=${WALDEN_STACK_BUDGET:-2048}             # size program (RAM storage): issue 15's goal itself; 2,020 (with and without start slots) since SegmentInfo shrank to 40 bytes (2026-12-07); 2,092 after the stale-segment check before that; 2,048 before
stack_budget_flash=${WALDEN_STACK_BUDGET_FLASH:-3260} # power-cut demo (walden-flash): 3,212 since SegmentInfo shrank to 40 bytes (2026-12-07); 3,276 after the stale-segment check of 2026-12-07 and walden-flash's reserved spare; 3,220 (3,164 before the gaps at erase blocks; 3,068 before the adapter's hostile-input checks)
if [ "${1:-}" = "--broken" ]; then
  stack_budget=1 stack_budget_flash=1
fi
elf=target/thumbv7em-none-eabihf/release/walden-embedded
fail=0

run() {
  local name=$1; shift
  cargo build --release --quiet "$@"
  echo "--- $name: qemu-system-arm -M mps2-an386 ($*)"
  local out
  if ! out=$(timeout 120 qemu-system-arm -M mps2-an386 -nographic \
      -semihosting-config enable=on,target=native -kernel "$elf" 2>&1); then
    echo "$out"
    echo "$name: the program failed or did not finish" >&2
    fail=1
    return
  fi
  echo "$out"
  RUN_OUTPUT=$out
}

expect() {
  if ! grep -qE "$1" <<<"$RUN_OUTPUT"; then
    echo "expected a line matching: $1" >&2
    fail=1
  fi
}

stack_check() {
  local budget=$1 used
  used=$(sed -n 's/^stack used by Wal::open: \([0-9]*\) bytes$/\1/p' <<<"$RUN_OUTPUT")
  if [ -z "$used" ] || [ "$used" -gt "$budget" ]; then
    echo "Wal::open used ${used:-?} bytes of stack (budget $budget)" >&2
    fail=1
  else
    echo "Wal::open used $used bytes of stack (budget $budget) ok"
  fi
}

RUN_OUTPUT=
run "size program (RAM storage)"
expect '^appended 53 records; recovered 53; read back 53; truncate_front removed [1-9]'
expect '^walden-embedded: ok$'
stack_check "$stack_budget"

RUN_OUTPUT=
run "size program without start slots (truncate_front not built in)" --no-default-features --features log
expect '^appended 53 records; recovered 53; read back 53; truncate_front removed 0 segments$'
expect '^walden-embedded: ok$'
stack_check "$stack_budget"

RUN_OUTPUT=
run "power-cut demo (walden-flash on emulated NOR)" --features flash
expect '^boot 1: created a new log$'
expect '^power cut while programming record 21$'
expect '^boot 2: recovered 20 records \(LSN 1\.\.=20\) in [0-9]+ segments; cut [0-9]+ bytes of torn tail .*from LSN 21'
expect '^appended 21 records; recovered 20; read back 20; truncate_front removed [1-9]'
expect '^walden-embedded: ok$'
stack_check "$stack_budget_flash"

if [ "$fail" != 0 ]; then
  echo "qemu checks failed" >&2
  exit 1
fi
echo "qemu: the three programs ran and printed what they must"
