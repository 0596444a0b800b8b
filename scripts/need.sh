# Sourced by the check scripts: `need COMMAND PACKAGE` makes sure COMMAND exists, installing
# the Debian PACKAGE when it is missing (needs apt-get and root), or fails saying what to
# install. A fresh machine with only the Rust toolchain may lack qemu, readelf, python3 or a
# C++ compiler (libFuzzer).
need() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null && return 0
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing $pkg for $cmd (Debian package)"
    apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 || true
  fi
  command -v "$cmd" >/dev/null && return 0
  echo "$cmd is missing and could not be installed (that needs apt-get, as root);" \
       "install Debian's $pkg package and run again" >&2
  exit 1
}

# `need_nightly [COMPONENT...]`: the nightly toolchain (fuzzing, Miri), installed with rustup
# (minimal profile) when missing, with the given components added.
need_nightly() {
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "installing the nightly toolchain (rustup, minimal profile)"
    rustup toolchain install nightly --profile minimal >/dev/null
  fi
  if [ $# -gt 0 ]; then
    rustup +nightly component add "$@" >/dev/null
  fi
}
