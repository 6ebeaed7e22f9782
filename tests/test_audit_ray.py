"""`audit --engine ray`: on a local 2-CPU Ray instance, the same reports as the process pool."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from detectors.audit import audit
from fakestudio.cli import cli
from tests.test_audit import mixed  # noqa: F401 - the mixed folder fixture

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray>=2.40')")


@pytest.fixture(scope="module")
def local_ray():
    kw = {"num_cpus": 2, "include_dashboard": False, "log_to_driver": False}
    if os.environ.get("FAKESTUDIO_HOME"):
        kw["runtime_env"] = {"env_vars": {"FAKESTUDIO_HOME": os.environ["FAKESTUDIO_HOME"]}}
    ray.init(**kw)
    yield
    ray.shutdown()


def test_ray_engine_gives_the_local_pool_results(mixed, local_ray):  # noqa: F811
    from detectors.audit_ray import audit_ray

    kw = {"ledger_path": mixed["ledger"]}
    local = audit(mixed["root"], workers=2, **kw).to_dict()
    assert local["summary"]["total"] >= 8
    on_ray = audit_ray(mixed["root"], num_cpus=2, **kw).to_dict()
    assert on_ray == local
    # back-pressure at its tightest (one file per task, one task in flight): still the same
    seen = []
    tight = audit_ray(
        mixed["root"], batch=1, in_flight=1, on_progress=lambda d, t, r: seen.append(d), **kw
    ).to_dict()
    assert tight == local and seen == list(range(1, len(seen) + 1))


def test_cli_audit_engine_ray(mixed, local_ray, tmp_path):  # noqa: F811
    args = ["audit", str(mixed["root"]), "--ledger", str(mixed["ledger"]), "--json"]
    local = CliRunner().invoke(cli, args)
    res = CliRunner().invoke(cli, [*args, "--engine", "ray", "--csv", str(tmp_path / "a.csv")])
    assert res.exit_code == local.exit_code == 0, res.output
    assert json.loads(res.stdout) == json.loads(local.stdout)
    assert (tmp_path / "a.csv").read_text().count("\n") == json.loads(res.stdout)["summary"][
        "total"
    ] + 1
    bad = CliRunner().invoke(cli, [*args, "--address", "ray://nowhere:1"])
    assert bad.exit_code == 2 and "--engine ray" in bad.output
