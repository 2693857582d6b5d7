#!/usr/bin/env bash
# Make sure a headless-capable Chromium exists for the browser tests in tests/e2e/.
# scripts/test.sh runs this only when the e2e suite is part of the run (no arguments, or arguments
# naming tests/e2e); nothing else needs Chromium, root or sudo.
#
# Uses Debian's own `chromium` package (never `playwright install`, never a downloaded build).
# Exit status: 0 when Chromium is available afterwards; 0 with a notice when it cannot be
# installed here (no apt-get, not root and no sudo): the browser tests then skip with that reason.
# Set LEADPIPE_REQUIRE_CHROMIUM=1 to turn "cannot install" into a failure (exit 1).
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
  exit 0
fi

fail() {
  echo "[chromium] $*" >&2
  if [ "${LEADPIPE_REQUIRE_CHROMIUM:-0}" = "1" ]; then exit 1; fi
  exit 0
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: cannot install Chromium; browser tests will skip"

if [ "$(id -u)" = "0" ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  fail "not root and no passwordless sudo: cannot install Chromium; browser tests will skip"
fi

echo "[chromium] installing Debian's chromium package (about 20 s)" >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
"${SUDO[@]}" apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; fail "apt-get update failed"; }
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >"$log" 2>&1 ||
  { cat "$log" >&2; fail "apt-get install chromium failed"; }
[ -x "$CHROMIUM" ] || fail "chromium installed but $CHROMIUM is missing"
echo "[chromium] installed: $("$CHROMIUM" --version 2>/dev/null | tail -1)" >&2
