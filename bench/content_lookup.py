"""Finding an output by its content when no mark is left: recall, false matches, cost at scale.

    .venv/bin/python bench/content_lookup.py                 # all three parts
    .venv/bin/python bench/content_lookup.py --part recall   # or: false, scale
    .venv/bin/python bench/content_lookup.py --scale 10000,100000 --pg postgresql://...

1. **recall**: the bench pictures (bench-images and fixtures, 512 px) labelled with both
   marks; each copy (every edit of bench/edits.py, informed removal then each edit) is looked
   up among all of them by its keys (``detectors.content.query_keys`` against
   ``index_keys``): found when its own output has ``MIN_VOTES`` or more voting points and is
   confirmed by ``content.check``. Also counted: how many postings of *other* outputs a query
   reads (key collisions), which sets the cost of a look-up in a large index.
2. **false**: N unrelated pictures (the watermark bench's synthetic sweep: noise, flat,
   gradients, stripes, text; and random windows, flips and rescales of pictures that are not
   in the index) looked up in an index of the other pictures through the ledger, as `verify`
   does: any confirmed candidate is a false match.
3. **scale**: the registry's tables (``fakestudio.registry.storage``) bulk-loaded with 10^4
   and 10^5 records of random descriptors (384 keys each), on SQLite (and PostgreSQL with
   ``--pg``); a look-up with a real copy's ~12,800 keys, against a scan of every stored key as
   the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _labelled(pics):
    from attacks import embed_both

    return [embed_both(a, f"{i * 7919 + 11:010x}") for i, (_, a) in enumerate(pics)]


def recall() -> None:
    from attacks import informed_removal
    from edits import EDITS
    from watermark_robustness import pictures

    from detectors import content

    pics = pictures(None)
    labelled = _labelled(pics)
    descs = [content.describe(a) for a in labelled]
    postings = defaultdict(set)  # key -> {(record, point)}
    for r, d in enumerate(descs):
        for point, key in content.index_keys(d):
            postings[key].add((r, point))
    found = defaultdict(list)
    false_postings, queries, t_query = 0, 0, 0.0
    for i, lab in enumerate(labelled):
        payload = f"{i * 7919 + 11:010x}"
        sources = {"edit": lab, "removal": informed_removal(lab, payload)}
        for kind, src in sources.items():
            for name, edit in EDITS.items():
                copy = edit(src)
                t = time.perf_counter()
                keys = content.query_keys(copy)
                t_query += time.perf_counter() - t
                queries += 1
                votes = defaultdict(set)
                for k in keys:
                    for r, point in postings.get(k, ()):
                        votes[r].add(point)
                false_postings += sum(len(p) for r, p in votes.items() if r != i)
                ranked = sorted(
                    (r for r, p in votes.items() if len(p) >= content.MIN_VOTES),
                    key=lambda r: -len(votes[r]),
                )[:3]
                ok = i in ranked and content.check(copy, descs[i]).outcome == "match"
                found[(kind, name)].append(ok)
    n = len(labelled)
    print(f"recall: {n} outputs, {queries} copies ({queries // n} per output)")
    for kind in ("edit", "removal"):
        rates = {name: np.mean(found[(kind, name)]) for name in EDITS}
        worst = sorted(rates.items(), key=lambda t: t[1])[:4]
        allv = [v for name in EDITS for v in found[(kind, name)]]
        print(
            f"  {kind:8s}: found {sum(allv)}/{len(allv)} ({100 * np.mean(allv):.1f}%); weakest "
            + ", ".join(f"{k} {100 * v:.0f}%" for k, v in worst)
        )
    per = false_postings / queries / (n - 1)
    print(
        f"  other outputs' postings read per copy: {per:.3f} per stored output "
        f"(-> ~{per * 1e6:,.0f} at 10^6 outputs, {100 * per / (content.INDEX_POINTS * content.KEY_TABLES):.3f}% "
        f"of the index); query keys {1000 * t_query / queries:.1f} ms per copy"
    )


def false_matches(n: int) -> None:
    from edits import EDITS
    from watermark_robustness import pictures, synthetic

    from detectors import content
    from detectors.ledger import Ledger, LedgerEntry

    pics = pictures(None)
    half = len(pics) // 2
    indexed, others = pics[:half], pics[half:]
    home = Path(tempfile.mkdtemp(prefix="fs-content-"))
    ledger = Ledger(home / "ledger.sqlite")
    for i, lab in enumerate(_labelled(indexed)):
        d = content.describe(lab)
        ledger.add(
            LedgerEntry(
                payload=f"{i:010x}",
                sha256=f"{i:064x}",
                phash="0" * 16,
                created="2026-12-08T00:00:00+00:00",
                file_name=f"{i}.png",
                format="png",
                width=512,
                height=512,
                record={},
                manifest={"assertions": [content.assertion(d)]},
            )
        )
    rng = np.random.default_rng(5)
    kinds = ["noise", "flat", "gradient", "stripes", "text"]
    edits = list(EDITS.values())
    hits, candidates, worst_inliers, t0 = 0, 0, 0, time.perf_counter()
    for k in range(n):
        if k % 2:
            a = synthetic(kinds[k % 5], k, int((256, 384, 512)[k % 3]))
        else:
            _, src = others[k % len(others)]
            s = int(rng.integers(200, 512))
            y, x = rng.integers(0, 512 - s + 1, 2)
            a = src[y : y + s, x : x + s]
            if rng.random() < 0.5:
                a = a[:, ::-1]
            a = edits[int(rng.integers(len(edits)))](np.ascontiguousarray(a))
        for _, row in ledger.by_content(content.query_keys(a)):
            candidates += 1
            res = content.check(a, content.from_manifest(ledger.by_id(row).manifest))
            worst_inliers = max(worst_inliers, res.inliers)
            hits += res.outcome == "match"
            if res.outcome == "match":
                print(f"FALSE MATCH: unrelated picture {k} -> output {row}: {res.reason}")
    print(
        f"false: {n} unrelated pictures against {half} indexed outputs: {candidates} candidates "
        f"by keys, {hits} confirmed (most inliers among them {worst_inliers}, a match needs "
        f"{content.MATCH_INLIERS}); {time.perf_counter() - t0:.0f} s"
    )


def scale(sizes: list[int], pg: str | None) -> None:
    from watermark_robustness import pictures

    from detectors import content
    from fakestudio.registry.storage import open_storage

    _, a = pictures(1)[0]
    keys = content.query_keys(a)
    per = content.INDEX_POINTS * content.KEY_TABLES
    print(f"scale: a look-up sends {len(keys)} keys; each record is filed under {per} keys")
    urls = []
    tmp = Path(tempfile.mkdtemp(prefix="fs-scale-"))
    for n in sizes:
        urls.append(("sqlite", n, f"sqlite:///{tmp}/s{n}.sqlite"))
        if pg:
            urls.append(("postgresql", n, pg))
    for kind, n, url in urls:
        st = open_storage(url)
        if kind == "postgresql":
            with st._conn() as conn:
                conn.execute(
                    "DROP TABLE IF EXISTS content_keys, bindings, manifests, tokens, schema_migrations CASCADE"
                )
        st.migrate()
        t = time.perf_counter()
        _load(st, n, per)
        load_s = time.perf_counter() - t
        reps = 5
        t = time.perf_counter()
        for _ in range(reps):
            st.by_content(keys)
        look = (time.perf_counter() - t) / reps
        t = time.perf_counter()
        st._read("SELECT key, manifest, point FROM content_keys", ())
        scan = time.perf_counter() - t
        print(
            f"  {kind:10s} {n:>9,} records ({n * per:>12,} keys, loaded in {load_s:.0f} s): "
            f"look-up {1000 * look:7.1f} ms, scan {1000 * scan:9.1f} ms (x{scan / look:.0f})"
        )
        st.close()


def _load(st, n: int, per: int) -> None:
    """n records of random keys, bulk-loaded in key order (what the B-tree appends fastest)."""
    rng = np.random.default_rng(n)
    keys = rng.integers(0, 1 << 35, n * per, dtype=np.int64)
    manifest = np.repeat(np.arange(1, n + 1, dtype=np.int64), per)
    point = np.tile(np.arange(per, dtype=np.int64) // 8, n)
    order = np.lexsort((point, manifest, keys))
    keys, manifest, point = keys[order], manifest[order], point[order]
    manifests = [
        (i + 1, f"urn:c2pa:scale-{i}", b"\0", "image/png", 512, 512, 0, 0, 0, 0, 0, "2026-01-01")
        for i in range(n)
    ]
    cols = "id, manifest_id, store, format, width, height, phash, b0, b1, b2, b3, published"
    chunk = 200_000
    with st._conn() as conn:
        if st.kind == "sqlite":
            conn.execute("BEGIN")
            conn.executemany(
                f"INSERT INTO manifests ({cols}) VALUES ({','.join('?' * 12)})", manifests
            )
            for i in range(0, len(keys), chunk):
                rows = zip(
                    keys[i : i + chunk].tolist(),
                    manifest[i : i + chunk].tolist(),
                    point[i : i + chunk].tolist(),
                    strict=True,
                )
                conn.executemany("INSERT OR IGNORE INTO content_keys VALUES (?,?,?)", rows)
            conn.execute("COMMIT")
        else:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(f"COPY manifests ({cols}) FROM STDIN") as cp:
                    for r in manifests:
                        cp.write_row(r)
                with cur.copy("COPY content_keys (key, manifest, point) FROM STDIN") as cp:
                    last = None
                    for row in zip(keys.tolist(), manifest.tolist(), point.tolist(), strict=True):
                        if row != last:
                            cp.write_row(row)
                            last = row
            conn.execute("VACUUM ANALYZE content_keys")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--part", choices=("recall", "false", "scale", "all"), default="all")
    ap.add_argument("--false", type=int, default=10_000, dest="n_false", help="unrelated pictures")
    ap.add_argument("--scale", default="10000,100000", help="record counts for the scale part")
    ap.add_argument(
        "--pg", default=None, help="a PostgreSQL URL for the scale part (its tables are dropped)"
    )
    args = ap.parse_args()
    os.environ.setdefault("FAKESTUDIO_HOME", tempfile.mkdtemp(prefix="fs-content-home-"))
    if args.part in ("recall", "all"):
        recall()
    if args.part in ("false", "all"):
        false_matches(args.n_false)
    if args.part in ("scale", "all"):
        scale([int(x) for x in args.scale.split(",")], args.pg)


if __name__ == "__main__":
    main()
