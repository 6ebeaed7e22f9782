"""Start or stop the throw-away PostgreSQL that the test command gives the registry tests.

    eval "$(python scripts/test_postgres.py start)"   # prints export lines, or a note on stderr
    python scripts/test_postgres.py stop               # stops the one named in the environment

initdb + pg_ctl from Debian's `postgresql` package, on a private data folder and a free port
on 127.0.0.1 (as the user `nobody` when run as root: PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.registry_support import LocalPostgres  # noqa: E402


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else ""
    if what == "start":
        pg = LocalPostgres(Path(tempfile.mkdtemp(prefix="fakestudio-pg-")))
        try:
            url = pg.start()
        except Exception as e:  # noqa: BLE001
            print(
                f"note: PostgreSQL not started ({e}); its tests will start or skip", file=sys.stderr
            )
            return 0
        print(f"export FAKESTUDIO_TEST_PG={shlex.quote(url)}")
        print(f"export FAKESTUDIO_TEST_PG_DIR={shlex.quote(str(pg.folder))}")
        return 0
    if what == "stop":
        folder = os.environ.get("FAKESTUDIO_TEST_PG_DIR")
        if folder:
            pg = LocalPostgres(Path(folder))
            pg.stop()
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        return 0
    print("usage: test_postgres.py start|stop", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
