#!/usr/bin/env bash
# Prepares this checkout for `npm run demo`, `npm test` or a benchmark, on a fresh machine as on a warm one:
#   1. Node.js new enough; 2. dependencies installed (npm ci) with native modules built;
#   3. for tests: Debian's chromium (the admin console's browser tests) and python3-pika (the interop tests);
#   4. for tests/benchmarks: PostgreSQL, MariaDB, RabbitMQ and NATS JetStream answer (started if down), database `test` exists.
# Usage: scripts/setup.sh demo|test|bench
set -euo pipefail
mode="${1:-test}"
cd "$(dirname "$0")/.."

say() { printf 'tmm setup: %s\n' "$*" >&2; }
die() { printf 'tmm setup: ERROR: %s\n' "$*" >&2; exit 1; }

# 1. Node.js
command -v node >/dev/null || die "node is not installed (Node.js >= 20.19 is required)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || die "Node.js >= 20.19 is required, found $(node --version)"

# 2. Dependencies. Reinstall when node_modules is missing or was installed from another lock file (compared by
#    content, not by time: a fresh clone's files are all new).
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f node_modules/.package-lock.json ] || [ "$(cat node_modules/.tmm-lock-sha256 2>/dev/null)" != "$lock_hash" ]; then
  # `npm install` from the lock file rather than `npm ci`: this npm (11.x) records only the current platform's
  # optional binaries (@swc/core-*) in the lock file and then `npm ci` refuses it as out of sync.
  say "installing dependencies from package-lock.json (native modules build from source where no prebuilt binary can be fetched)"
  npm install --no-save --no-audit --no-fund >&2 || die "npm install failed (see above)"
  echo "$lock_hash" > node_modules/.tmm-lock-sha256
fi
if ! node -e 'require("better-sqlite3")(":memory:").close()' 2>/dev/null; then
  say "building better-sqlite3"
  npm rebuild better-sqlite3 >&2 || die "could not build better-sqlite3 (needs python3, make and g++)"
fi
if [ "$mode" != "demo" ] && ! node -e 'require("sqlite3")' 2>/dev/null; then
  say "building sqlite3 (the TypeORM 0.3 compatibility lane)"
  npm rebuild sqlite3 >&2 || die "could not build sqlite3 (needs python3, make and g++)"
fi

# Headless Chromium for the admin console's browser tests (test/integration/admin-console.test.ts), driven by
# playwright-core: Debian's package, never a browser build downloaded by a tool.
if [ "$mode" = "test" ] && [ ! -x /usr/bin/chromium ]; then
  say "installing Debian's chromium package (for the admin console's browser tests)"
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } >&2 \
    || die "could not install chromium with apt-get (run as root, or install Debian's 'chromium' package so that /usr/bin/chromium exists)"
  [ -x /usr/bin/chromium ] || die "apt-get installed chromium but /usr/bin/chromium is missing"
fi

# A foreign AMQP client for the wire-format interop tests (test/integration/interop-pika.test.ts): Debian's
# python3-pika, so that tmm is tested against a client that is not amqplib.
# The tests run Debian's /usr/bin/python3 (or $TMM_PYTHON), where apt's python3-pika lands.
pika_python="${TMM_PYTHON:-/usr/bin/python3}"
if [ "$mode" = "test" ] && ! "$pika_python" -c 'import pika' 2>/dev/null; then
  say "installing Debian's python3-pika package (the foreign client of the interop tests)"
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-pika; } >&2 \
    || die "could not install python3-pika with apt-get (run as root, or install Debian's 'python3-pika' so that $pika_python -c 'import pika' works)"
  "$pika_python" -c 'import pika' 2>/dev/null || die "apt-get installed python3-pika but $pika_python cannot import pika (set TMM_PYTHON to a python3 that has it)"
fi

[ "$mode" = "demo" ] && exit 0

# 3. Services. Each is checked with a real client connection; a service that does not answer is started
#    with the machine's own command, then waited for.
start_postgres() { pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start; }
start_mariadb() { start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd; }
start_rabbitmq() { rabbitmq-server -detached; }
start_nats() {
  [ -x /usr/sbin/nats-server ] || { say "/usr/sbin/nats-server is not installed (Debian package nats-server)"; return 1; }
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
}

ensure() {
  local name="$1" starter="$2" waited=0
  if node scripts/check-services.js "$name" >/dev/null 2>&1; then return 0; fi
  say "$name does not answer; starting it"
  if ! $starter >&2 2>&1; then say "the start command for $name failed"; fi
  while ! node scripts/check-services.js "$name" >/dev/null 2>&1; do
    waited=$((waited + 2))
    [ "$waited" -gt 90 ] && die "$name still does not answer after 90 s: $(node scripts/check-services.js "$name" 2>&1 | tail -n1)"
    sleep 2
  done
  say "$name is up"
}
ensure postgres start_postgres
ensure mariadb start_mariadb
ensure rabbitmq start_rabbitmq
ensure nats start_nats
node scripts/check-services.js ensure-databases >&2 || die "could not create the test databases"
