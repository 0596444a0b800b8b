#!/usr/bin/env bash
# Builds a tiny wasm32-unknown-unknown cdylib that links walden-core and checks the module
# imports nothing from the host (no `env` imports: core does no I/O of its own).
# With --broken, the probe imports a host function and the check must fail (proves the checker).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/need.sh
need python3 python3-minimal
probe=target/wasm-import-probe
mkdir -p "$probe/src"
cat > "$probe/Cargo.toml" <<'TOML'
[package]
name = "wasm-import-probe"
version = "0.0.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
walden-core = { path = "../../core", features = ["serde"] }

[profile.release]
panic = "abort"

[workspace]
TOML
cat > "$probe/src/lib.rs" <<'RS'
#![no_std]
use walden_core::{ChecksumAlgorithm, raw::{RecordFlags, RecordHeader, RecordKind}, Lsn};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Exercises the codec so it is linked in.
#[unsafe(no_mangle)]
pub extern "C" fn probe(salt: u64) -> u32 {
    let h = RecordHeader { length: 3, lsn: Lsn(1), payload_crc: 0, kind: RecordKind::Single, flags: RecordFlags::PLAIN, ack_gap: 1 };
    let b = h.encode(ChecksumAlgorithm::Crc32c, salt);
    RecordHeader::decode(&b, ChecksumAlgorithm::Crc32c, salt).map_or(0, |h| h.length)
}
RS
if [ "${1:-}" = "--broken" ]; then
  # The checker's own broken variant: a module that does import from the host must be caught.
  cat >> "$probe/src/lib.rs" <<'RS'
unsafe extern "C" { fn host_clock() -> u64; }
#[unsafe(no_mangle)]
pub extern "C" fn probe_clock() -> u64 { unsafe { host_clock() } }
RS
fi
cargo build --quiet --release --manifest-path "$probe/Cargo.toml" --target wasm32-unknown-unknown \
  --target-dir target/wasm-import-probe/target
wasm="target/wasm-import-probe/target/wasm32-unknown-unknown/release/wasm_import_probe.wasm"
python3 - "$wasm" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
assert data[:4] == b'\0asm', 'not a wasm module'
def leb(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1; r |= (x & 0x7f) << s; s += 7
        if x < 0x80: return r, i
i, imports = 8, []
while i < len(data):
    sid = data[i]; size, i = leb(data, i + 1); end = i + size
    if sid == 2:
        n, j = leb(data, i)
        for _ in range(n):
            ml, j = leb(data, j); mod = data[j:j+ml].decode(); j += ml
            fl, j = leb(data, j); field = data[j:j+fl].decode(); j += fl
            kind = data[j]; j += 1
            if kind == 0: _, j = leb(data, j)
            elif kind == 1: j += 1; flags = data[j]; j += 1; _, j = leb(data, j); j = leb(data, j)[1] if flags & 1 else j
            elif kind == 2: flags = data[j]; j += 1; _, j = leb(data, j); j = leb(data, j)[1] if flags & 1 else j
            elif kind == 3: j += 2
            imports.append((mod, field))
    i = end
print(f"wasm32-unknown-unknown module: {len(data)} bytes, {len(imports)} imports {imports}")
sys.exit(1 if imports else 0)
PY
