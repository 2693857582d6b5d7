#!/usr/bin/env bash
# Make sure PostgreSQL and a Redis server exist for the distributed suite in tests/distributed/
# and the PostgreSQL example's test (tests/integration/test_example_visitors_to_postgres.py).
# Those tests run this themselves when a server is missing; nothing else needs PostgreSQL, Redis,
# root or sudo. It only installs: the suite starts its own servers (initdb into a temporary folder, free
# loopback ports) and removes them afterwards; the packages' own system services are not used.
#
# Uses Debian's packages (`postgresql`, `redis-server`).
# Exit status: 0 when both are available afterwards; 0 with a notice when they cannot be installed
# here (no apt-get, not root and no sudo): the distributed tests then skip with that reason.
# Set LEADPIPE_REQUIRE_SERVICES=1 to turn "cannot install" into a failure (exit 1).
set -euo pipefail

has_postgres() { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || command -v initdb >/dev/null 2>&1; }
has_redis() { command -v redis-server >/dev/null 2>&1 || [ -x /usr/sbin/redis-server ] || [ -x /usr/bin/redis-server ]; }

packages=()
has_postgres || packages+=(postgresql)
has_redis || packages+=(redis-server)
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi

fail() {
  echo "[services] $*" >&2
  if [ "${LEADPIPE_REQUIRE_SERVICES:-0}" = "1" ]; then exit 1; fi
  exit 0
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: cannot install ${packages[*]}; distributed tests will skip"

if [ "$(id -u)" = "0" ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  fail "not root and no passwordless sudo: cannot install ${packages[*]}; distributed tests will skip"
fi

echo "[services] installing Debian's ${packages[*]} package(s) (about 20 s)" >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
"${SUDO[@]}" apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; fail "apt-get update failed"; }
# policy-rc.d-less containers may try to start the packages' services: harmless, we never use them.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >"$log" 2>&1 ||
  { cat "$log" >&2; fail "apt-get install ${packages[*]} failed"; }
has_postgres || fail "postgresql installed but no postgres binary found under /usr/lib/postgresql"
has_redis || fail "redis-server installed but not found"
echo "[services] installed: ${packages[*]}" >&2
