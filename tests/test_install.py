"""`pip install fakestudio` is the torch-free core; each command of an extra says which to install.

The slow test installs the repository without extras into a new virtual environment (from
PyPI, through pip's cache) and runs the analysis commands there on the shared fixtures, as a
journalist who only wants `fakestudio verify` would. The others hide the extras' packages from
a subprocess of this environment (`sys.modules[name] = None`: the import fails as if the
package were not installed), which is quick.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fakestudio.extras import EXTRAS
from tests.test_verify import EXPECTED

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = sorted({name for names in EXTRAS.values() for name in names})

# each command of an extra, and the arguments that would otherwise get it going
NEEDS = [
    ("studio", ["generate", "a photo", "--out", "{tmp}/out"]),
    ("studio", ["train", "{tmp}", "--out", "{tmp}/x.safetensors"]),
    ("studio", ["encounter", "--person", "a", "--person", "b", "--scene", "x", "--out", "{tmp}"]),
    ("studio", ["demo", "--out", "{tmp}/demo"]),
    (
        "studio",
        [
            "prepare",
            "{tmp}",
            "--token",
            "ab0c",
            "--class-word",
            "man",
            "--out",
            "{tmp}/ds",
            "--consent",
            "I agree",
        ],
    ),  # fmt: skip
    ("registry", ["registry", "serve", "--port", "0"]),
    ("web", ["web", "--port", "0"]),
    ("cluster", ["audit", "{tmp}", "--engine", "ray"]),
]


def without_extras(args: list[str], hide=HIDDEN, **kw) -> subprocess.CompletedProcess:
    """`fakestudio ARGS` in a process where the extras' packages cannot be imported."""
    code = (
        "import sys\n"
        f"for name in {list(hide)!r}:\n"
        "    sys.modules[name] = None\n"
        "from fakestudio.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, timeout=120, env=env, **kw,
    )  # fmt: skip


def assert_asks_for(res: subprocess.CompletedProcess, extra: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, res.stderr
    assert f"pip install 'fakestudio[{extra}]'" in line, line
    assert "is not installed" in line, line


@pytest.mark.parametrize("extra, args", NEEDS, ids=[" ".join(a[:2]) for _, a in NEEDS])
def test_a_command_without_its_extra_says_which_to_install(tmp_path, extra, args):
    res = without_extras([a.format(tmp=tmp_path) for a in args])
    assert_asks_for(res, extra)
    assert not list(tmp_path.iterdir())  # nothing was written


def test_an_import_deep_down_names_its_extra_too(tmp_path):
    # `registry token list` needs no extra on SQLite; a PostgreSQL URL needs psycopg
    db = "postgresql://x@127.0.0.1:1/x"
    res = without_extras(["registry", "token", "list", "--db", db], hide=["psycopg"])
    assert_asks_for(res, "registry")
    assert "psycopg is not installed" in res.stderr
    # any other import of an extra's package that fails is named the same way by the CLI
    from fakestudio.extras import missing_extra

    error = missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch.nn"), "x")
    assert str(error) == (
        "x needs fakestudio's studio extra (torch is not installed): "
        "pip install 'fakestudio[studio]'"
    )
    assert missing_extra(ModuleNotFoundError(name="nonexistent"), "x") is None


def test_the_core_commands_run_without_the_extras(tmp_path, fixtures_dir):
    photo = fixtures_dir / "generated" / "hypernetworks_hypernetwork_example_output.png"
    res = without_extras(["label", str(photo), "--out", str(tmp_path / "labelled")])
    assert res.returncode == 0, res.stderr
    labelled = tmp_path / "labelled" / photo.name
    res = without_extras(["verify", str(labelled), "--json"])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["verdict"]["outcome"] == "labelled-ai"
    res = without_extras(["compare", str(fixtures_dir / "real" / "DSCN0010.jpg"), str(labelled)])
    assert res.returncode == 0, res.stderr


def _core_venv(tmp: Path) -> Path:
    """A new virtual environment with `pip install <this repository>`, no extras. The source
    is copied first: pip builds in the source tree, which would leave build/ behind."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for pkg in ("fakestudio", "detectors"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=skip)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    res = subprocess.run([*pip, str(src)], capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    return venv


@pytest.mark.slow
def test_the_core_installs_alone_and_verifies_the_fixtures(tmp_path, fixtures_dir):
    venv = _core_venv(tmp_path)
    py, fakestudio = venv / "bin" / "python", str(venv / "bin" / "fakestudio")
    probe = f"import importlib.util as u; print([m for m in {HIDDEN!r} if u.find_spec(m)])"
    found = subprocess.run([py, "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"  # no torch, diffusers, ray, psycopg, starlette ...
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed copy only

    def run(*args, cwd=tmp_path):
        return subprocess.run(
            [fakestudio, *map(str, args)], capture_output=True, text=True, timeout=300, env=env,
            cwd=cwd,
        )  # fmt: skip

    names = sorted(EXPECTED)
    anchors = fixtures_dir / "c2pa" / "test_cert_root_bundle.pem"
    for extra_args, column in (([], 0), (["--trust-anchors", anchors], 1)):
        res = run(
            "verify", "--json", "--no-ledger", *extra_args, *(fixtures_dir / n for n in names)
        )
        reports = json.loads(res.stdout)
        assert [r["verdict"]["outcome"] for r in reports] == [EXPECTED[n][column] for n in names]
    # label a picture another generator made, verify the copy, make a poster: all in the core
    photo = fixtures_dir / "generated" / "hypernetworks_hypernetwork_example_output.png"
    assert run("label", photo, "--out", tmp_path / "labelled").returncode == 0
    res = run("verify", "--json", tmp_path / "labelled" / photo.name)
    assert res.returncode == 0 and json.loads(res.stdout)["verdict"]["outcome"] == "labelled-ai"
    res = run("compare", fixtures_dir / "real" / "DSCN0010.jpg", tmp_path / "labelled" / photo.name,
              "--png", tmp_path / "poster.png")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert run("audit", fixtures_dir / "c2pa", "--no-ledger").returncode == 0
    # lora-info reads a LoRA (written here with safetensors' numpy API: there is no torch)
    lora = tmp_path / "x.safetensors"
    make = (
        "import numpy as np, sys; from safetensors.numpy import save_file\n"
        "k = 'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k'\n"
        "save_file({k + '.lora_down.weight': np.zeros((4, 768), np.float16),\n"
        "           k + '.lora_up.weight': np.zeros((320, 4), np.float16),\n"
        "           k + '.alpha': np.array(2.0, np.float16)}, sys.argv[1])\n"
    )
    subprocess.run([py, "-c", make, lora], check=True, timeout=60)
    res = run("lora-info", lora, "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert (info["rank"], info["alpha"], info["architecture"]) == (4, 2.0, "sd1")
    # and the studio says what to install
    res = run("generate", "a photo", "--out", tmp_path / "out")
    assert_asks_for(res, "studio")
    assert not (tmp_path / "out").exists()
