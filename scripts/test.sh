#!/usr/bin/env bash
# The README's test command: set up (if needed), lint, run the whole suite.
# The HTML reports are checked in a real headless browser: Debian's chromium is installed
# when missing and we may (root with apt-get); without it those tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: could not install chromium; browser checks will be skipped" >&2
fi
# The registry tests run on SQLite and on a real PostgreSQL: Debian's server binaries (installed
# when missing and we may), started on a private data folder and port, stopped when we exit.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "note: could not install postgresql; its registry tests will be skipped" >&2
fi
.venv/bin/ruff check .
eval "$(.venv/bin/python scripts/test_postgres.py start)"
trap '.venv/bin/python scripts/test_postgres.py stop' EXIT
.venv/bin/pytest -q "$@"
