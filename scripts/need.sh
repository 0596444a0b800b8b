# Sourced by the check scripts: `need COMMAND PACKAGE` makes sure COMMAND exists, installing
# the Debian PACKAGE when it is missing (needs apt-get and root), or fails saying what to
# install. A fresh machine with only the Rust toolchain may lack qemu, readelf or python3.
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
