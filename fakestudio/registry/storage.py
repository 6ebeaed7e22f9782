"""Where the registry keeps manifests: SQLite (embedded default) or PostgreSQL, one interface.

    store = open_storage("sqlite:///srv/registry.sqlite")      # or a plain path
    store = open_storage("postgresql://registry@db.example/registry")
    store.migrate()
    pk, created = store.put(Publication(...))
    store.by_binding(alg, value)          # O(log n): the primary key (alg, value, manifest)
    store.by_phash(phash, radius=7)       # multi-index hashing: 4 x 16-bit bands, not a scan

Perceptual-hash look-up is multi-index hashing (Norouzi et al.): the 64-bit hash is cut into
four 16-bit bands, each indexed. Two hashes within Hamming distance r agree within
floor(r / 4) bits on at least one band (pigeonhole), so the candidates are the rows whose band
k is one of the values within floor(r / 4) bits of the query's band k, for some k: index
look-ups only (each band index also holds the hash, so the probes never touch the table); the
exact distance is then computed on those rows. The cost is the probes (1, 17 or 137 values per
band for r <= 3, <= 7, <= 11) plus the rows they return: for uniformly spread hashes a fraction
4 x probes / 65,536 of the table (0.1% at r <= 7), so a look-up at r <= 7 reads ~1/1000 of what
a scan reads.

Schema changes are numbered migrations applied in order (`schema_migrations` records them),
under a lock (PostgreSQL advisory lock, SQLite `BEGIN IMMEDIATE`), so several servers can
start against one database. Every value reaches SQL as a bound parameter, never as text.
"""

from __future__ import annotations

import itertools
import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fakestudio.extras import require

BANDS = 4
BAND_BITS = 16
MAX_RESULTS = 100


class StorageError(Exception):
    """The database cannot be opened or used (one line, no secrets)."""


@dataclass
class Publication:
    """One manifest store to file under its soft bindings."""

    manifest_id: str
    store: bytes  # the C2PA manifest store (JUMBF), application/c2pa
    format: str  # the asset's MIME type
    width: int
    height: int
    phash: str  # 16 hex digits
    bindings: list[tuple[str, str]]  # (alg, value) pairs the manifest declares
    signer: str | None = None
    content_keys: list[tuple[int, int]] = field(default_factory=list)  # (point, key)
    title: str | None = None
    asset_sha256: str | None = None
    publisher: int | None = None
    published: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )


@dataclass
class Row:
    """A stored manifest, without its store bytes."""

    pk: int
    manifest_id: str
    format: str
    width: int
    height: int
    phash: str
    signer: str | None
    title: str | None
    published: str
    bindings: list[tuple[str, str]] = field(default_factory=list)


def phash_int(hex16: str) -> int:
    return int(hex16, 16) & 0xFFFFFFFFFFFFFFFF


def bands(h: int) -> list[int]:
    """The four 16-bit bands of a 64-bit hash, most significant first."""
    return [(h >> (BAND_BITS * (BANDS - 1 - k))) & 0xFFFF for k in range(BANDS)]


def _signed64(h: int) -> int:
    return h - (1 << 64) if h >= 1 << 63 else h


def _unsigned64(h: int) -> int:
    return h & 0xFFFFFFFFFFFFFFFF


def near_values(band: int, bits: int) -> list[int]:
    """Every 16-bit value within `bits` differing bits of `band` (bits 0, 1, 2: 1, 17, 137)."""
    out = [band]
    for d in range(1, bits + 1):
        for flip in itertools.combinations(range(BAND_BITS), d):
            v = band
            for b in flip:
                v ^= 1 << b
            out.append(v)
    return out


# --- migrations ------------------------------------------------------------------------------
# (version, SQLite statements, PostgreSQL statements). Never edit a released one: add another.

MIGRATIONS: list[tuple[int, list[str], list[str]]] = [
    (
        1,
        [
            """CREATE TABLE manifests (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                manifest_id TEXT NOT NULL UNIQUE,
                store BLOB NOT NULL,
                format TEXT NOT NULL,
                width INTEGER NOT NULL,
                height INTEGER NOT NULL,
                phash INTEGER NOT NULL,
                b0 INTEGER NOT NULL, b1 INTEGER NOT NULL, b2 INTEGER NOT NULL, b3 INTEGER NOT NULL,
                signer TEXT, title TEXT, asset_sha256 TEXT,
                publisher INTEGER, published TEXT NOT NULL)""",
            "CREATE INDEX manifests_b0 ON manifests (b0, phash)",
            "CREATE INDEX manifests_b1 ON manifests (b1, phash)",
            "CREATE INDEX manifests_b2 ON manifests (b2, phash)",
            "CREATE INDEX manifests_b3 ON manifests (b3, phash)",
            """CREATE TABLE bindings (
                alg TEXT NOT NULL, value TEXT NOT NULL,
                manifest INTEGER NOT NULL REFERENCES manifests (id),
                PRIMARY KEY (alg, value, manifest))""",
            "CREATE INDEX bindings_manifest ON bindings (manifest)",
            """CREATE TABLE tokens (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
                created TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)""",
        ],
        [
            """CREATE TABLE manifests (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                manifest_id TEXT NOT NULL UNIQUE,
                store BYTEA NOT NULL,
                format TEXT NOT NULL,
                width INTEGER NOT NULL,
                height INTEGER NOT NULL,
                phash BIGINT NOT NULL,
                b0 INTEGER NOT NULL, b1 INTEGER NOT NULL, b2 INTEGER NOT NULL, b3 INTEGER NOT NULL,
                signer TEXT, title TEXT, asset_sha256 TEXT,
                publisher BIGINT, published TEXT NOT NULL)""",
            "CREATE INDEX manifests_b0 ON manifests (b0, phash)",
            "CREATE INDEX manifests_b1 ON manifests (b1, phash)",
            "CREATE INDEX manifests_b2 ON manifests (b2, phash)",
            "CREATE INDEX manifests_b3 ON manifests (b3, phash)",
            """CREATE TABLE bindings (
                alg TEXT NOT NULL, value TEXT NOT NULL,
                manifest BIGINT NOT NULL REFERENCES manifests (id),
                PRIMARY KEY (alg, value, manifest))""",
            "CREATE INDEX bindings_manifest ON bindings (manifest)",
            """CREATE TABLE tokens (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
                created TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)""",
        ],
    ),
    (
        # content look-up (detectors.content): a manifest's signed content descriptor, filed
        # under the bit-sampled keys of its keypoints; (key, manifest, point) so a look-up is an
        # index range per key and the votes count distinct points
        2,
        [
            """CREATE TABLE content_keys (
                key INTEGER NOT NULL, manifest INTEGER NOT NULL, point INTEGER NOT NULL,
                PRIMARY KEY (key, manifest, point)) WITHOUT ROWID""",
            "CREATE INDEX content_keys_manifest ON content_keys (manifest)",
        ],
        [
            """CREATE TABLE content_keys (
                key BIGINT NOT NULL, manifest BIGINT NOT NULL REFERENCES manifests (id),
                point SMALLINT NOT NULL, PRIMARY KEY (key, manifest, point))""",
            "CREATE INDEX content_keys_manifest ON content_keys (manifest)",
        ],
    ),
]

_ROW_COLS = "id, manifest_id, format, width, height, phash, signer, title, published"


class SqlStorage:
    """The registry's tables on SQLite or PostgreSQL; thread-safe (a small connection pool)."""

    def __init__(self, url: str, *, pool_size: int = 8):
        self.url = url
        self.kind = "postgresql" if url.startswith(("postgresql://", "postgres://")) else "sqlite"
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._made = 0
        self._max = pool_size
        self._lock = threading.Lock()
        if self.kind == "sqlite":
            self.path = _sqlite_path(url)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(
                    f"{self.path.parent}: cannot create ({e.strerror or e})"
                ) from None
        self._ph = "?" if self.kind == "sqlite" else "%s"

    # -- connections --

    def _connect(self):
        if self.kind == "sqlite":
            try:
                conn = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as e:
                raise StorageError(
                    f"{self.path}: cannot open the registry database ({e})"
                ) from None
            return conn
        require("registry", "a postgresql:// database")
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise StorageError(f"cannot connect to PostgreSQL: {_one_line(e)}") from None

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            with self._lock:
                grow = self._made < self._max
                if grow:
                    self._made += 1
            if grow:
                try:
                    conn = self._connect()
                except BaseException:
                    with self._lock:
                        self._made -= 1
                    raise
            else:
                conn = self._pool.get(timeout=60)
        ok = False
        try:
            yield conn
            ok = True
        finally:
            if ok:
                self._pool.put(conn)
            else:  # a connection that failed mid-way is not reused
                _close(conn)
                with self._lock:
                    self._made -= 1

    @contextmanager
    def _tx(self, lock: bool = False) -> Iterator[Any]:
        """A write transaction: a cursor; committed on success, rolled back otherwise."""
        with self._conn() as conn:
            if self.kind == "sqlite":
                cur = conn.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
            else:
                with conn.transaction(), conn.cursor() as cur:
                    if lock:
                        cur.execute("SELECT pg_advisory_xact_lock(5243917)")
                    yield cur

    def _q(self, sql: str) -> str:
        return sql.replace("%s", self._ph) if self._ph != "%s" else sql

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._conn() as conn:
            cur = conn.cursor()
            try:
                cur.execute(self._q(sql), args)
                return list(cur.fetchall())
            finally:
                cur.close()

    def close(self) -> None:
        while True:
            try:
                _close(self._pool.get_nowait())
            except queue.Empty:
                break

    # -- schema --

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; return the versions applied."""
        applied: list[int] = []
        with self._tx(lock=True) as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied TEXT NOT NULL)"
            )
            cur.execute("SELECT version FROM schema_migrations")
            have = {r[0] for r in cur.fetchall()}
            for version, lite, pg in MIGRATIONS:
                if version in have:
                    continue
                for stmt in lite if self.kind == "sqlite" else pg:
                    cur.execute(stmt)
                cur.execute(
                    self._q("INSERT INTO schema_migrations (version, applied) VALUES (%s, %s)"),
                    (version, _now()),
                )
                applied.append(version)
        return applied

    def schema_version(self) -> int:
        rows = self._read("SELECT MAX(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    # -- tokens --

    def add_token(self, name: str, token_hash: str) -> int:
        with self._tx() as cur:
            cur.execute(
                self._q(
                    "INSERT INTO tokens (name, token_hash, created) VALUES (%s, %s, %s) RETURNING id"
                ),
                (name, token_hash, _now()),
            )
            return int(cur.fetchone()[0])

    def token_id(self, token_hash: str) -> int | None:
        rows = self._read(
            "SELECT id FROM tokens WHERE token_hash = %s AND revoked = 0", (token_hash,)
        )
        return int(rows[0][0]) if rows else None

    def revoke_token(self, token_id: int) -> bool:
        with self._tx() as cur:
            cur.execute(self._q("UPDATE tokens SET revoked = 1 WHERE id = %s"), (token_id,))
            return cur.rowcount > 0

    def tokens(self) -> list[dict]:
        rows = self._read("SELECT id, name, created, revoked FROM tokens ORDER BY id")
        return [{"id": r[0], "name": r[1], "created": r[2], "revoked": bool(r[3])} for r in rows]

    # -- manifests --

    def put(self, pub: Publication) -> tuple[int, bool]:
        """Store a publication; (row id, True) when new, (existing id, False) when this
        manifest id was already stored (its bindings are added if new)."""
        h = phash_int(pub.phash)
        b = bands(h)
        with self._tx() as cur:
            cur.execute(
                self._q(
                    "INSERT INTO manifests (manifest_id, store, format, width, height, phash,"
                    " b0, b1, b2, b3, signer, title, asset_sha256, publisher, published)"
                    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                    " ON CONFLICT (manifest_id) DO NOTHING RETURNING id"
                ),
                (
                    pub.manifest_id,
                    pub.store,
                    pub.format,
                    pub.width,
                    pub.height,
                    _signed64(h),
                    *b,
                    pub.signer,
                    pub.title,
                    pub.asset_sha256,
                    pub.publisher,
                    pub.published,
                ),
            )
            row = cur.fetchone()
            created = row is not None
            if created:
                pk = int(row[0])
            else:
                cur.execute(
                    self._q("SELECT id FROM manifests WHERE manifest_id = %s"), (pub.manifest_id,)
                )
                pk = int(cur.fetchone()[0])
            for alg, value in dict.fromkeys(pub.bindings):
                cur.execute(
                    self._q(
                        "INSERT INTO bindings (alg, value, manifest) VALUES (%s, %s, %s)"
                        " ON CONFLICT DO NOTHING"
                    ),
                    (alg, value, pk),
                )
            if created and pub.content_keys:
                cur.executemany(
                    self._q(
                        "INSERT INTO content_keys (key, manifest, point) VALUES (%s, %s, %s)"
                        " ON CONFLICT DO NOTHING"
                    ),
                    [(int(k), pk, int(point)) for point, k in pub.content_keys],
                )
        return pk, created

    def by_binding(self, alg: str, value: str, limit: int = 10) -> list[Row]:
        """Manifests filed under exactly (alg, value), newest first."""
        rows = self._read(
            f"SELECT {', '.join('m.' + c.strip() for c in _ROW_COLS.split(','))}"
            " FROM bindings b JOIN manifests m ON m.id = b.manifest"
            " WHERE b.alg = %s AND b.value = %s ORDER BY m.id DESC LIMIT %s",
            (alg, value, _limit(limit)),
        )
        return [self._row(r) for r in rows]

    def by_phash(self, phash: str, radius: int = 7, limit: int = 10) -> list[tuple[int, Row]]:
        """(distance, row) for stored hashes within `radius` bits of `phash`, nearest first."""
        h = phash_int(phash)
        per_band = max(0, int(radius)) // BANDS
        q = bands(h)
        cands = [near_values(v, per_band) for v in q]
        if self.kind == "sqlite":
            where = " OR ".join(
                f"b{k} IN ({', '.join('?' * len(vals))})" for k, vals in enumerate(cands)
            )
            args: tuple = tuple(v for vals in cands for v in vals)
            sql = f"SELECT id, phash FROM manifests WHERE {where}"
        else:
            sql = (
                "SELECT id, phash FROM manifests WHERE b0 = ANY(%s) OR b1 = ANY(%s)"
                " OR b2 = ANY(%s) OR b3 = ANY(%s)"
            )
            args = tuple(cands)
        near = []
        for pk, stored in self._read(sql, args):
            d = (h ^ _unsigned64(int(stored))).bit_count()
            if d <= radius:
                near.append((d, int(pk)))
        near.sort()
        near = near[: _limit(limit)]
        if not near:
            return []
        rows = {r.pk: r for r in self._rows_by_pk([pk for _, pk in near])}
        return [(d, rows[pk]) for d, pk in near if pk in rows]

    def by_content(
        self, keys: list[int], min_votes: int = 2, limit: int = 10
    ) -> list[tuple[int, Row]]:
        """(votes, row) of the manifests whose content keys meet ``keys`` (a copy's
        ``detectors.content.query_keys``) at ``min_votes`` or more distinct points, most first.
        One primary-key range look-up per key (``key = ANY``/``IN``), never a scan: the rows
        read are the keys' posting lists (docs/attacks.md has their measured size)."""
        keys = sorted({int(k) for k in keys})
        if not keys:
            return []
        votes: dict[int, set[int]] = {}
        for i in range(0, len(keys), 900):
            chunk = keys[i : i + 900]
            if self.kind == "sqlite":
                sql = f"SELECT manifest, point FROM content_keys WHERE key IN ({', '.join('?' * len(chunk))})"
                args: tuple = tuple(chunk)
            else:
                sql = "SELECT manifest, point FROM content_keys WHERE key = ANY(%s)"
                args = (chunk,)
            for pk, point in self._read(sql, args):
                votes.setdefault(int(pk), set()).add(int(point))
        ranked = sorted(
            ((len(p), pk) for pk, p in votes.items() if len(p) >= min_votes), reverse=True
        )
        ranked = ranked[: _limit(limit)]
        if not ranked:
            return []
        rows = {r.pk: r for r in self._rows_by_pk([pk for _, pk in ranked])}
        return [(v, rows[pk]) for v, pk in ranked if pk in rows]

    def _raw(self, sql: str, args: tuple) -> list[tuple]:
        with self._conn() as conn:
            return list(conn.execute(sql, args).fetchall())

    def _rows_by_pk(self, pks: list[int]) -> list[Row]:
        marks = ", ".join(["%s"] * len(pks))
        rows = self._read(f"SELECT {_ROW_COLS} FROM manifests WHERE id IN ({marks})", tuple(pks))
        return [self._row(r) for r in rows]

    def get_store(self, manifest_id: str) -> tuple[bytes, Row] | None:
        rows = self._read(
            f"SELECT {_ROW_COLS}, store FROM manifests WHERE manifest_id = %s", (manifest_id,)
        )
        if not rows:
            return None
        return bytes(rows[0][-1]), self._row(rows[0][:-1])

    def bindings_of(self, pk: int) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in self._read(
                "SELECT alg, value FROM bindings WHERE manifest = %s ORDER BY alg, value", (pk,)
            )
        ]

    def algorithms(self) -> list[str]:
        return [r[0] for r in self._read("SELECT DISTINCT alg FROM bindings ORDER BY alg")]

    def counts(self) -> dict:
        m = self._read("SELECT COUNT(*) FROM manifests")[0][0]
        b = self._read("SELECT COUNT(*) FROM bindings")[0][0]
        return {"manifests": int(m), "bindings": int(b)}

    def explain_by_phash(self, phash: str, radius: int = 7) -> str:
        """The query plan of a perceptual-hash look-up (tests check it uses the band indexes)."""
        h = phash_int(phash)
        cands = [near_values(v, max(0, radius) // BANDS) for v in bands(h)]
        if self.kind == "sqlite":
            where = " OR ".join(
                f"b{k} IN ({', '.join('?' * len(vals))})" for k, vals in enumerate(cands)
            )
            rows = self._raw(
                f"EXPLAIN QUERY PLAN SELECT id, phash FROM manifests WHERE {where}",
                tuple(v for vals in cands for v in vals),
            )
            return "\n".join(str(r[-1]) for r in rows)
        with self._conn() as conn, conn.cursor() as cur:
            cur.execute("SET enable_seqscan = off")
            try:
                cur.execute(
                    "EXPLAIN SELECT id, phash FROM manifests WHERE b0 = ANY(%s) OR b1 = ANY(%s)"
                    " OR b2 = ANY(%s) OR b3 = ANY(%s)",
                    tuple(cands),
                )
                return "\n".join(r[0] for r in cur.fetchall())
            finally:
                cur.execute("RESET enable_seqscan")

    @staticmethod
    def _row(r) -> Row:
        return Row(
            pk=int(r[0]),
            manifest_id=r[1],
            format=r[2],
            width=int(r[3]),
            height=int(r[4]),
            phash=f"{_unsigned64(int(r[5])):016x}",
            signer=r[6],
            title=r[7],
            published=r[8],
        )


def default_url() -> str:
    from detectors.paths import data_dir

    return f"sqlite:///{data_dir() / 'registry.sqlite'}"


def open_storage(url: str | None = None, *, migrate: bool = True, pool_size: int = 8) -> SqlStorage:
    """The storage at `url` (sqlite:///PATH, a plain path, or postgresql://...), migrated."""
    url = url or default_url()
    if "://" in url and not url.startswith(("sqlite://", "postgresql://", "postgres://")):
        raise StorageError(
            f"--db {_redact(url)}: unknown database; use sqlite:///PATH or postgresql://..."
        )
    store = SqlStorage(url, pool_size=pool_size)
    if migrate:
        try:
            store.migrate()
        except StorageError:
            raise
        except Exception as e:  # noqa: BLE001 - sqlite3 / psycopg errors: one line
            raise StorageError(f"--db {_redact(url)}: {_one_line(e)}") from None
    return store


def _sqlite_path(url: str) -> Path:
    if url.startswith("sqlite:///"):  # sqlite:////abs/path or sqlite:///relative/path
        return Path(url[len("sqlite:///") :]).expanduser()
    if url.startswith("sqlite://"):
        return Path(url[len("sqlite://") :])
    return Path(url).expanduser()


def _redact(url: str) -> str:
    """A database URL without its password."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _limit(n: int) -> int:
    return max(1, min(MAX_RESULTS, int(n)))


def _close(conn) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001
        pass


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _one_line(e) -> str:
    return " ".join(str(e).split())[:300]
