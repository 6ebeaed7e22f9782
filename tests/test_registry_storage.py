"""The registry's storage: one suite, run on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import random
import threading

from fakestudio.registry.storage import MIGRATIONS, Publication, bands, phash_int
from tests.conftest_registry import pg_server_fixture, storage_fixture  # noqa: F401

ALG = "org.fakestudio.wm.dwtdctsvd.v1"


def pub(i: int, phash: str | None = None, **kw) -> Publication:
    base = dict(
        manifest_id=f"urn:c2pa:{i:08d}-0000-4000-8000-000000000000",
        store=b"\x00jumb" + i.to_bytes(4, "big") * 8,
        format="image/png",
        width=512,
        height=384,
        phash=phash or f"{random.Random(i).getrandbits(64):016x}",
        bindings=[(ALG, f"{i:010x}")],
        signer="test signer",
        title=f"out{i}.png",
    )
    base.update(kw)
    return Publication(**base)


def test_migrations_are_recorded_and_idempotent(storage):
    assert storage.schema_version() == len(MIGRATIONS) == 2
    assert storage.migrate() == []  # a second server starting on the same database
    assert storage.counts() == {"manifests": 0, "bindings": 0}


def test_put_then_look_up_by_binding_and_id(storage):
    pk, created = storage.put(pub(1))
    assert created
    again, created2 = storage.put(pub(1))
    assert (again, created2) == (pk, False)
    assert storage.counts() == {"manifests": 1, "bindings": 1}
    rows = storage.by_binding(ALG, f"{1:010x}")
    assert [r.manifest_id for r in rows] == [pub(1).manifest_id]
    assert storage.by_binding(ALG, f"{2:010x}") == []
    assert storage.by_binding("other.alg", f"{1:010x}") == []
    store, row = storage.get_store(pub(1).manifest_id)
    assert store == pub(1).store and row.width == 512 and row.phash == pub(1).phash
    assert storage.get_store("urn:c2pa:missing") is None
    assert storage.algorithms() == [ALG]


def test_sql_looking_strings_are_stored_verbatim(storage):
    evil = "x'); DROP TABLE bindings; --"
    p = pub(
        7,
        manifest_id="urn:c2pa:1' OR '1'='1",
        bindings=[(evil, "1 OR 1=1; DELETE FROM manifests"), (ALG, "%s%%s?")],
        title="Robert'); DROP TABLE manifests;--",
        signer='"; SELECT pg_sleep(10); --',
    )
    storage.put(p)
    assert [r.manifest_id for r in storage.by_binding(evil, "1 OR 1=1; DELETE FROM manifests")] == [
        p.manifest_id
    ]
    assert storage.by_binding(ALG, "%s%%s?")[0].title == p.title
    store, row = storage.get_store(p.manifest_id)
    assert row.signer == p.signer and row.title == p.title and store == p.store
    assert storage.counts() == {"manifests": 1, "bindings": 2}  # nothing dropped or deleted


def test_perceptual_hash_lookup_equals_brute_force(storage):
    rng = random.Random(5)
    query = rng.getrandbits(64)
    stored = {}
    for i in range(300):
        if i < 40:  # near the query: flip 0..12 bits
            h = query
            for b in rng.sample(range(64), i % 13):
                h ^= 1 << b
        else:
            h = rng.getrandbits(64)
        stored[i] = h
        storage.put(pub(i, phash=f"{h:016x}"))
    for radius in (3, 6, 8, 10):
        want = sorted(
            ((h ^ query).bit_count(), pub(i).manifest_id)
            for i, h in stored.items()
            if (h ^ query).bit_count() <= radius
        )
        got = storage.by_phash(f"{query:016x}", radius=radius, limit=100)
        assert sorted((d, r.manifest_id) for d, r in got) == want, radius
        assert [d for d, _ in got] == sorted(d for d, _ in got)  # nearest first


def test_perceptual_hash_lookup_uses_the_band_indexes(storage):
    storage.put(pub(1))
    plan = storage.explain_by_phash("0123456789abcdef", radius=8)
    if storage.kind == "sqlite":
        assert "MULTI-INDEX OR" in plan and "manifests_b0" in plan and "SCAN manifests" not in plan
    else:
        assert "Bitmap Index Scan on manifests_b0" in plan and "Seq Scan" not in plan


def test_bands_cover_the_hash():
    h = phash_int("fedcba9876543210")
    assert bands(h) == [0xFEDC, 0xBA98, 0x7654, 0x3210]


def test_concurrent_publishers_lose_and_duplicate_nothing(storage):
    errors = []

    def publisher(k: int):
        try:
            for j in range(40):
                i = k * 1000 + j
                storage.put(pub(i))
                storage.put(pub(i))  # a retry of the same publication
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=publisher, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert storage.counts() == {"manifests": 160, "bindings": 160}
    for k in range(4):
        rows = storage.by_binding(ALG, f"{k * 1000 + 39:010x}")
        assert len(rows) == 1


def test_tokens_are_stored_hashed_and_revocable(storage):
    from fakestudio.registry import tokens

    tid, secret = tokens.create(storage, "studio-a")
    assert secret.startswith("fsr_") and len(secret) > 40
    assert storage.token_id(tokens.hash_token(secret)) == tid
    assert storage.token_id(secret) is None  # the token itself is not what is stored
    listed = storage.tokens()
    assert listed == [
        {"id": tid, "name": "studio-a", "created": listed[0]["created"], "revoked": False}
    ]
    assert storage.revoke_token(tid)
    assert storage.token_id(tokens.hash_token(secret)) is None
