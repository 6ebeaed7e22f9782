"""The output ledger: one SQLite row per labelled output, in the user data directory.

It lets a verify recover provenance for a copy whose metadata was stripped: look the
watermark payload up, or nominate candidates by perceptual hash and confirm them.
Rows hold file names, never paths, and the public record (no prompt unless recorded).
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from detectors.fingerprint import CANDIDATE_BITS, hamming
from detectors.paths import data_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    phash TEXT NOT NULL,
    created TEXT NOT NULL,
    file_name TEXT NOT NULL,
    format TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    record_json TEXT NOT NULL,
    manifest_json TEXT NOT NULL,
    UNIQUE (sha256)
);
CREATE INDEX IF NOT EXISTS outputs_payload ON outputs (payload);
CREATE TABLE IF NOT EXISTS content_keys (
    key INTEGER NOT NULL,
    output INTEGER NOT NULL,
    point INTEGER NOT NULL,
    PRIMARY KEY (key, output, point)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS content_keys_output ON content_keys (output);
"""


@dataclass
class LedgerEntry:
    payload: str
    sha256: str
    phash: str
    created: str
    file_name: str
    format: str
    width: int
    height: int
    record: dict
    manifest: dict
    id: int | None = None


def _private(path: Path) -> None:
    """The ledger holds recorded prompts: mode 0600, like the signing key (SQLite gives its
    journal files the database's mode). An existing, more open ledger of ours is tightened."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        st = path.stat()
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(path, 0o600)
    except (OSError, AttributeError):
        pass  # read-only media, other platforms: sqlite reports what matters


def default_path() -> Path:
    return data_dir() / "ledger.sqlite"


class Ledger:
    def __init__(self, path: Path | None = None, *, readonly: bool = False):
        self.path = Path(path) if path else default_path()
        if readonly:
            if not self.path.exists():
                self.db = None
                return
            uri = "file:" + urllib.parse.quote(str(self.path.absolute())) + "?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, timeout=10)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _private(self.path)
            self.db = sqlite3.connect(self.path, timeout=10)
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def add(self, e: LedgerEntry) -> int:
        """File an output (replacing a row of the same sha256), with the look-up keys of the
        content descriptor its manifest carries (``detectors.content``)."""
        # what fakestudio made from outputs (a poster of several pictures, a page's preview of
        # a fake) is not looked up by content: a poster holds other pictures, real photos too,
        # and a crop of it must not read as that (AI-labelled) poster; a preview is its
        # source's content, whose own row answers
        keys = [] if (e.record or {}).get("kind") else _content_keys(e.manifest)
        with self.db:
            old = self.db.execute("SELECT id FROM outputs WHERE sha256 = ?", (e.sha256,)).fetchone()
            if old:
                self.db.execute("DELETE FROM content_keys WHERE output = ?", (old[0],))
            cur = self.db.execute(
                "INSERT OR REPLACE INTO outputs (payload, sha256, phash, created, file_name, format,"
                " width, height, record_json, manifest_json) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    e.payload,
                    e.sha256,
                    e.phash,
                    e.created,
                    e.file_name,
                    e.format,
                    e.width,
                    e.height,
                    json.dumps(e.record, sort_keys=True),
                    json.dumps(e.manifest, sort_keys=True),
                ),
            )
            self.db.executemany(
                "INSERT OR IGNORE INTO content_keys (key, output, point) VALUES (?,?,?)",
                [(k, cur.lastrowid, point) for point, k in keys],
            )
        return cur.lastrowid

    def _rows(self, where: str = "", args: tuple = ()) -> list[LedgerEntry]:
        if self.db is None:
            return []
        cur = self.db.execute(
            "SELECT id, payload, sha256, phash, created, file_name, format, width, height,"
            f" record_json, manifest_json FROM outputs {where} ORDER BY id",
            args,
        )
        return [
            LedgerEntry(
                id=r[0],
                payload=r[1],
                sha256=r[2],
                phash=r[3],
                created=r[4],
                file_name=r[5],
                format=r[6],
                width=r[7],
                height=r[8],
                record=json.loads(r[9]),
                manifest=json.loads(r[10]),
            )
            for r in cur.fetchall()
        ]

    def by_payload(self, payload: str) -> list[LedgerEntry]:
        return self._rows("WHERE payload = ?", (payload,))

    def by_sha256(self, sha256: str) -> LedgerEntry | None:
        rows = self._rows("WHERE sha256 = ?", (sha256,))
        return rows[0] if rows else None

    def by_phash(self, phash: str, max_bits: int = CANDIDATE_BITS) -> list[tuple[int, LedgerEntry]]:
        """Candidates within max_bits of phash, nearest first."""
        hits = [(hamming(phash, e.phash), e) for e in self._rows()]
        return sorted(((d, e) for d, e in hits if d <= max_bits), key=lambda t: t[0])

    def by_content(
        self, keys: list[int], min_votes: int = 2, limit: int = 3
    ) -> list[tuple[int, int]]:
        """(votes, row id) of the outputs whose content keys meet ``keys`` (a copy's
        ``detectors.content.query_keys``) at ``min_votes`` or more of their points, most first.
        An index look-up per key; a ledger older than content binding has no such table."""
        if self.db is None or not keys:
            return []
        try:
            hits = {}
            for i in range(0, len(keys), 900):  # SQLite's bound-parameter limit
                chunk = keys[i : i + 900]
                marks = ",".join("?" * len(chunk))
                for out, point in self.db.execute(
                    f"SELECT output, point FROM content_keys WHERE key IN ({marks})", chunk
                ):
                    hits.setdefault(out, set()).add(point)
            ranked = sorted(
                ((len(p), o) for o, p in hits.items() if len(p) >= min_votes), reverse=True
            )[: 4 * limit]
            # outputs before what was made from them (a talk page's previews, whose record has
            # a "kind"): the previews of a fake must not crowd the fake itself out
            derived = {}
            if ranked:
                marks = ",".join("?" * len(ranked))
                derived = dict(
                    self.db.execute(
                        "SELECT id, json_extract(record_json, '$.kind') IS NOT NULL FROM outputs"
                        f" WHERE id IN ({marks})",
                        [o for _, o in ranked],
                    ).fetchall()
                )
        except sqlite3.OperationalError:
            return []
        ranked.sort(key=lambda t: (derived.get(t[1], 1), -t[0], -t[1]))
        return ranked[:limit]

    def by_id(self, row_id: int) -> LedgerEntry | None:
        rows = self._rows("WHERE id = ?", (row_id,))
        return rows[0] if rows else None

    def count(self) -> int:
        if self.db is None:
            return 0
        return self.db.execute("SELECT COUNT(*) FROM outputs").fetchone()[0]


def _content_keys(manifest: dict) -> list[tuple[int, int]]:
    from detectors import content

    try:
        desc = content.from_manifest(manifest)
    except content.DescriptorError:
        return []
    return content.index_keys(desc) if desc is not None else []
