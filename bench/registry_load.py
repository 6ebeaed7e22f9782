"""Registry under load, on SQLite and PostgreSQL, over real HTTP on 127.0.0.1.

    python bench/registry_load.py            # 4 publishers x 2,500 manifests, 8 readers; 10^4 vs 10^6
    python bench/registry_load.py --quick    # 4 x 50, 8 readers; 10^3 vs 10^5 (a minute or two)

1. Load: a registry server (`fakestudio registry serve`, its own process, rate limit off) on
   each backend; 4 publisher threads publish signed outputs (each a distinct payload, checked
   by the server exactly as in production: signature, declared binding, watermark in the
   pixels), while 8 reader threads look payloads up by binding. Afterwards every publication
   must be found exactly once: no row lost, none duplicated. Prints publications/s, look-ups/s
   and p50/p95 latency; PostgreSQL's figures as a ratio of SQLite's, measured in the same run.
2. Kept-alive look-ups on an idle server: one client, one connection, look-ups by binding one
   after another (httpx.Client and http.client), on a registry served in this process through
   `fakestudio.serving.listen` and, as the baseline measured in the same run, through the
   `socket.create_server` socket `registry serve` used before (Nagle on: each response waited
   for the client's delayed ACK, ~44 ms). Target: p50 <= 5 ms.
3. Scale: look-up time by binding and by perceptual hash (radius 3 and 7) at 10^4 and at 10^6
   stored rows (synthetic, uniformly random hashes bulk-loaded straight into the tables), and
   a scan of every stored hash as the baseline measured in the same run. A scan takes ~100x as
   long at 100x the rows. By binding is a B-tree look-up. By pHash reads the index probes plus
   the rows they return, a fixed fraction of the table for random hashes (0.006% at r <= 3,
   0.1% at r <= 7): the printed ratio to the scan is what the multi-index hashing saves.

Signed test assets are cached under the fakestudio cache folder (bench-registry/), so a second
run skips making them. The machine is small (2 cores shared with the server): the numbers are
for comparing backends and sizes, not for a data-centre's capacity.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ALG = "org.fakestudio.wm.dwtdctsvd.v1"


# --- assets -----------------------------------------------------------------------------------


def _make_asset(i: int) -> tuple[str, bytes]:
    import numpy as np
    from PIL import Image

    from detectors.watermarks import ours
    from fakestudio.label.identity import ensure_identity
    from fakestudio.label.manifest import build_manifest, sign_bytes
    from fakestudio.record import GenerationRecord

    rng = np.random.default_rng(i)
    small = Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8))
    rgb = np.asarray(small.resize((256, 256), Image.Resampling.BICUBIC))
    payload = f"{(i * 2654435761 + 12345) % (1 << 40):010x}"
    marked = ours.embed(rgb, payload)
    buf = io.BytesIO()
    Image.fromarray(marked).save(buf, "PNG", compress_level=1)
    rec = GenerationRecord("bench", "", i, 2, 7.0, 256, 256, "euler", "tiny", "ab" * 32)
    manifest = build_manifest(rec, {"alg": ALG, "payload": payload})
    return payload, sign_bytes(buf.getvalue(), "image/png", manifest, ensure_identity())


def assets(n: int) -> list[tuple[str, bytes]]:
    from detectors.paths import cache_dir

    folder = cache_dir() / "bench-registry"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(n) if not (folder / f"{i:06d}.png").exists()]
    if missing:
        from fakestudio.label.identity import ensure_identity

        ensure_identity()
        t = time.perf_counter()
        with ProcessPoolExecutor(max(1, min(2, os.cpu_count() or 1))) as pool:
            for i, (payload, data) in zip(
                missing, pool.map(_make_asset, missing, chunksize=32), strict=True
            ):
                (folder / f"{i:06d}.png").write_bytes(data)
                (folder / f"{i:06d}.txt").write_text(payload)
        print(f"made {len(missing)} signed assets in {time.perf_counter() - t:.0f} s", flush=True)
    return [
        ((folder / f"{i:06d}.txt").read_text(), (folder / f"{i:06d}.png").read_bytes())
        for i in range(n)
    ]


# --- servers ----------------------------------------------------------------------------------


class Server:
    def __init__(self, db: str):
        from fakestudio.registry import tokens
        from fakestudio.registry.storage import open_storage

        st = open_storage(db)
        _, self.token = tokens.create(st, "bench")
        st.close()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fakestudio",
                "registry",
                "serve",
                "--db",
                db,
                "--port",
                "0",
                "--rate-limit",
                "0",
                "--max-body",
                "8",
            ],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = self.proc.stderr.readline()
        if "serving on" not in line:
            raise RuntimeError(f"the registry did not start: {line}")
        self.url = line.strip().rsplit(" ", 1)[-1]
        import httpx

        for _ in range(300):
            try:
                httpx.get(f"{self.url}/health")
                break
            except httpx.ConnectError:
                time.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def load(db: str, items: list[tuple[str, bytes]], publishers: int, readers: int) -> dict:
    import httpx

    from detectors.registry_client import RegistryClient

    server = Server(db)
    per = len(items) // publishers
    published: list[str] = []  # payloads the server has acknowledged
    pub_lock = threading.Lock()
    errors: list[str] = []
    done = threading.Event()
    lat: list[list[float]] = [[] for _ in range(readers)]
    misses = [0] * readers

    def publisher(k: int):
        with RegistryClient(server.url, server.token, timeout=60) as client:
            for payload, data in items[k * per : (k + 1) * per]:
                try:
                    client.publish(data, [(ALG, payload)])
                except Exception as e:  # noqa: BLE001
                    errors.append(f"publish: {e}")
                    continue
                with pub_lock:
                    published.append(payload)

    def reader(k: int):
        rng = random.Random(k)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            while not done.is_set():
                with pub_lock:
                    payload = rng.choice(published) if published else None
                if payload is None:
                    time.sleep(0.01)
                    continue
                t = time.perf_counter()
                r = http.get("/matches/byBinding", params={"alg": ALG, "value": payload})
                lat[k].append(time.perf_counter() - t)
                if r.status_code != 200 or not r.json().get("matches"):
                    misses[k] += 1

    try:
        rt = [threading.Thread(target=reader, args=(k,)) for k in range(readers)]
        pt = [threading.Thread(target=publisher, args=(k,)) for k in range(publishers)]
        t0 = time.perf_counter()
        for t in rt + pt:
            t.start()
        for t in pt:
            t.join()
        pub_s = time.perf_counter() - t0
        done.set()
        for t in rt:
            t.join()
        read_s = time.perf_counter() - t0
        # every publication found exactly once
        lost = dup = 0
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for payload, _ in items[: per * publishers]:
                m = http.get("/matches/byBinding", params={"alg": ALG, "value": payload}).json()
                n = len(m.get("matches") or [])
                lost += n == 0
                dup += n > 1
    finally:
        server.stop()
    all_lat = [x for xs in lat for x in xs]
    return {
        "publications": per * publishers,
        "publish_per_s": per * publishers / pub_s,
        "lookups": len(all_lat),
        "lookups_per_s": len(all_lat) / read_s,
        "p50_ms": 1000 * pct(all_lat, 0.50),
        "p95_ms": 1000 * pct(all_lat, 0.95),
        "lookup_misses": sum(misses),
        "lost": lost,
        "duplicated": dup,
        "errors": errors[:3],
    }


# --- kept-alive look-ups ----------------------------------------------------------------------


def keepalive(db: str, items: list[tuple[str, bytes]], n: int) -> dict:
    """p50/p95 of look-ups by binding on one kept-alive connection, new socket vs old."""
    import http.client
    import socket
    import urllib.parse

    import httpx

    from detectors.registry_client import RegistryClient
    from fakestudio.registry.app import RegistryConfig, create_app
    from fakestudio.registry.storage import open_storage
    from fakestudio.registry.tokens import create as create_token
    from fakestudio.serving import listen, uvicorn_server

    st = open_storage(db)
    _, token = create_token(st, "bench")
    app = create_app(st, RegistryConfig(rate=0))
    out: dict = {}
    try:
        for name, make in (
            ("create_server", lambda: socket.create_server(("127.0.0.1", 0))),
            ("serving.listen", lambda: listen("127.0.0.1", 0)),
        ):
            sock = make()
            server = uvicorn_server(app)
            th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            th.start()
            while not server.started:
                time.sleep(0.01)
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            with RegistryClient(url, token, timeout=60) as client:
                for payload, data in items[:5]:
                    client.publish(data, [(ALG, payload)])
            payloads = [p for p, _ in items[:5]]
            res = {}
            with httpx.Client(base_url=url, timeout=60) as hc:
                lat = []
                for i in range(n):
                    t = time.perf_counter()
                    r = hc.get("/matches/byBinding", params={"alg": ALG, "value": payloads[i % 5]})
                    lat.append(time.perf_counter() - t)
                    assert r.status_code == 200 and r.json()["matches"], r.text
            res["httpx"] = {"p50_ms": 1000 * pct(lat, 0.5), "p95_ms": 1000 * pct(lat, 0.95)}
            conn = http.client.HTTPConnection("127.0.0.1", sock.getsockname()[1], timeout=60)
            lat = []
            t0 = time.perf_counter()
            for i in range(n):
                q = urllib.parse.urlencode({"alg": ALG, "value": payloads[i % 5]})
                t = time.perf_counter()
                conn.request("GET", f"/matches/byBinding?{q}")
                resp = conn.getresponse()
                body = resp.read()
                lat.append(time.perf_counter() - t)
                assert resp.status == 200 and b"manifestId" in body
            conn.close()
            res["http.client"] = {"p50_ms": 1000 * pct(lat, 0.5), "p95_ms": 1000 * pct(lat, 0.95)}
            res["lookups_per_s"] = n / (time.perf_counter() - t0)
            server.should_exit = True
            th.join(10)
            sock.close()
            out[name] = res
    finally:
        st.close()
    return out


# --- scale --------------------------------------------------------------------------------------


def bulk_fill(st, n: int, start: int = 0) -> None:
    """n synthetic rows (manifest + binding) straight into the tables, in bulk."""
    from fakestudio.registry.storage import _signed64, bands

    rng = random.Random(start)
    batch = 20_000
    for lo in range(start, start + n, batch):
        rows, binds = [], []
        for i in range(lo, min(lo + batch, start + n)):
            h = rng.getrandbits(64)
            rows.append(
                (
                    i + 1,
                    f"urn:c2pa:bench-{i}",
                    b"\0",
                    "image/png",
                    256,
                    256,
                    _signed64(h),
                    *bands(h),
                    None,
                    None,
                    None,
                    None,
                    "2026-01-01T00:00:00+00:00",
                )
            )
            binds.append((ALG, f"{i:010x}", i + 1))
        with st._conn() as conn:
            if st.kind == "sqlite":
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO manifests (id, manifest_id, store, format, width, height, phash,"
                    " b0, b1, b2, b3, signer, title, asset_sha256, publisher, published)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
                conn.executemany(
                    "INSERT INTO bindings (alg, value, manifest) VALUES (?,?,?)", binds
                )
                conn.execute("COMMIT")
            else:
                with conn.transaction(), conn.cursor() as cur:
                    with cur.copy(
                        "COPY manifests (id, manifest_id, store, format, width, height, phash,"
                        " b0, b1, b2, b3, signer, title, asset_sha256, publisher, published)"
                        " FROM STDIN"
                    ) as cp:
                        for r in rows:
                            cp.write_row(r)
                    # rows given explicit ids: the identity column is ALWAYS generated
                    with cur.copy("COPY bindings (alg, value, manifest) FROM STDIN") as cp:
                        for r in binds:
                            cp.write_row(r)
    if st.kind == "postgresql":  # what autovacuum does to a table in service: hint bits, stats
        with st._conn() as conn:
            conn.execute("VACUUM ANALYZE manifests")
            conn.execute("VACUUM ANALYZE bindings")


def scan(st, phash: int, radius: int) -> list[int]:
    """The baseline: read every stored hash and compare (what the indexes avoid)."""
    from fakestudio.registry.storage import _unsigned64

    rows = st._read("SELECT id, phash FROM manifests")
    return [pk for pk, h in rows if (phash ^ _unsigned64(int(h))).bit_count() <= radius]


def time_lookups(st, n_stored: int, reps: int) -> dict:
    rng = random.Random(99)
    t = time.perf_counter()
    for _ in range(reps):
        i = rng.randrange(n_stored)
        assert len(st.by_binding(ALG, f"{i:010x}")) == 1
    out = {"by_binding_ms": 1000 * (time.perf_counter() - t) / reps}
    for radius in (3, 7):
        t = time.perf_counter()
        for _ in range(reps // 5):
            st.by_phash(f"{rng.getrandbits(64):016x}", radius=radius, limit=10)
        out[f"by_phash_r{radius}_ms"] = 1000 * (time.perf_counter() - t) / (reps // 5)
    t = time.perf_counter()
    for _ in range(3):
        scan(st, rng.getrandbits(64), 7)
    out["scan_ms"] = 1000 * (time.perf_counter() - t) / 3
    return out


def scale(db_for, small: int, large: int, reps: int) -> dict:
    from fakestudio.registry.storage import open_storage

    out = {}
    for kind, make in db_for.items():
        st = open_storage(make())
        if st.kind == "postgresql":  # the bulk load gives explicit ids
            with st._conn() as conn:
                conn.execute("ALTER TABLE manifests ALTER COLUMN id SET GENERATED BY DEFAULT")
        bulk_fill(st, small)
        a = time_lookups(st, small, reps)
        t = time.perf_counter()
        bulk_fill(st, large - small, start=small)
        fill_s = time.perf_counter() - t
        b = time_lookups(st, large, reps)
        st.close()
        out[kind] = {"small": a, "large": b, "fill_s": fill_s}
        x = large // small
        print(
            f"{kind:10s} rows {small:,} -> {large:,} (x{x}): "
            + "; ".join(
                f"{name[:-3].replace('_', ' ')} {a[name]:.3f} -> {b[name]:.3f} ms (x{b[name] / a[name]:.1f})"
                for name in a
            ),
            flush=True,
        )
        print(
            f"{kind:10s} at {large:,} rows: by pHash r=7 is x{b['scan_ms'] / b['by_phash_r7_ms']:.0f} "
            f"faster than a scan, r=3 x{b['scan_ms'] / b['by_phash_r3_ms']:.0f}",
            flush=True,
        )
    return out


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 x 50 publications; 10^3 vs 10^5 rows")
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--per-publisher", type=int, default=None)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-keepalive", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    per = args.per_publisher or (50 if args.quick else 2500)
    small, large = (10**3, 10**5) if args.quick else (10**4, 10**6)

    tmp = Path(tempfile.mkdtemp(prefix="fs-bench-registry-"))
    pg = None
    pg_url = os.environ.get("FAKESTUDIO_TEST_PG")
    if not args.no_postgres and not pg_url:
        from tests.registry_support import LocalPostgres

        pg = LocalPostgres(Path(tempfile.mkdtemp(prefix="fs-bench-pg-")))
        try:
            pg_url = pg.start()
        except Exception as e:  # noqa: BLE001
            print(f"note: no PostgreSQL ({e}); SQLite only", flush=True)
            pg, pg_url = None, None
    counter = iter(range(1000))

    def sqlite_db():
        return f"sqlite:///{tmp / f'r{next(counter)}.sqlite'}"

    def pg_db():
        from tests.conftest_registry import fresh_pg_database

        return fresh_pg_database(pg_url)

    dbs = {"sqlite": sqlite_db}
    if pg_url and not args.no_postgres:
        dbs["postgresql"] = pg_db
    if args.only:
        dbs = {k: v for k, v in dbs.items() if k == args.only}
    report: dict = {"publishers": args.publishers, "readers": args.readers, "per_publisher": per}
    try:
        if not args.skip_load:
            items = assets(per * args.publishers)
            report["load"] = {}
            for kind, make in dbs.items():
                res = load(make(), items, args.publishers, args.readers)
                report["load"][kind] = res
                print(
                    f"{kind:10s} {res['publications']} publications at {res['publish_per_s']:.1f}/s; "
                    f"{res['lookups']} look-ups at {res['lookups_per_s']:.0f}/s, "
                    f"p50 {res['p50_ms']:.1f} ms, p95 {res['p95_ms']:.1f} ms; "
                    f"lost {res['lost']}, duplicated {res['duplicated']}, misses {res['lookup_misses']}",
                    flush=True,
                )
            if "postgresql" in report["load"]:
                s, p = report["load"]["sqlite"], report["load"]["postgresql"]
                print(
                    f"postgresql / sqlite: publish x{p['publish_per_s'] / s['publish_per_s']:.2f}, "
                    f"look-ups x{p['lookups_per_s'] / s['lookups_per_s']:.2f}"
                )
        if not args.skip_keepalive:
            ka = keepalive(sqlite_db(), assets(5), 100 if args.quick else 500)
            report["keepalive"] = ka
            old, new = ka["create_server"], ka["serving.listen"]
            for client in ("httpx", "http.client"):
                print(
                    f"kept-alive look-up ({client}): p50 {old[client]['p50_ms']:.1f} ms "
                    f"(socket.create_server) -> {new[client]['p50_ms']:.2f} ms "
                    f"(serving.listen), x{old[client]['p50_ms'] / new[client]['p50_ms']:.0f}; "
                    f"p95 {new[client]['p95_ms']:.2f} ms",
                    flush=True,
                )
            print(
                f"kept-alive look-ups/s (http.client, one connection): "
                f"{old['lookups_per_s']:.0f} -> {new['lookups_per_s']:.0f} "
                f"(x{new['lookups_per_s'] / old['lookups_per_s']:.0f})",
                flush=True,
            )
        if not args.skip_scale:
            report["scale"] = scale(dbs, small, large, 200 if args.quick else 1000)
    finally:
        import shutil

        if pg is not None:
            pg.stop()
            shutil.rmtree(pg.folder, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    bad = any(r["lost"] or r["duplicated"] for r in report.get("load", {}).values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
