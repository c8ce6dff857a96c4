"""The benchmark scripts run end to end at small sizes, so that a GPU lease or a benchmark session does not find them
broken: the GPU script in its CPU smoke mode, the spectral benchmark on one mask (its dense-oracle check included),
and the compiled-Lanczos benchmark's skip without numba."""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(args, timeout=300, prelude=None):
    """Run a benchmark script (``args[0]`` relative to the repository) in a fresh interpreter; returns the process.
    ``prelude``: Python run before the script (``runpy``), e.g. to hide a module."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    script = str(ROOT / args[0])
    if prelude is None:
        cmd = [sys.executable, script, *args[1:]]
    else:
        code = (f"{prelude}\nimport runpy, sys\nsys.argv = {[script, *args[1:]]!r}\nsys.path.insert(0, "
                f"{str(Path(script).parent)!r})\nrunpy.run_path({script!r}, run_name='__main__')")
        cmd = [sys.executable, "-c", code]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_gpu_script_smoke_runs_every_section(tmp_path):
    out = tmp_path / "gpu"
    p = run(["benchmarks/bench_gpu.py", "--device", "cpu", "--smoke", "--out", str(out)])
    assert p.returncode == 0, p.stderr[-3000:]
    df = pd.read_csv(f"{out}.csv")
    assert set(df["section"]) == {"population scoring", "PAGS all-in", "training", "executors"}
    pop = df[df["section"] == "population scoring"]
    assert sorted(pop["P measured"].astype(int)) == [4, 8]  # the smoke sizes, measured in full
    assert (pop["ms/mask"] > 0).all() and pop["ms/mask"].map(math.isfinite).all()
    pags = df[df["section"] == "PAGS all-in"].iloc[0]
    assert int(pags["P measured"]) == 4 and pags["seconds"] > 0
    assert pags["generator s"] + pags["scoring s"] <= pags["seconds"]  # parts of the all-in time
    train = df[df["section"] == "training"].iloc[0]
    assert train["dense img/s"] > 0 and train["masked img/s"] > 0
    assert train["mask overhead"] == pytest.approx(train["dense img/s"] / train["masked img/s"], rel=1e-9)
    assert df[df["section"] == "executors"].iloc[0]["seconds"] > 0
    assert "Command: `" in Path(f"{out}.md").read_text()


def test_spectral_benchmark_on_one_mask_agrees_with_the_oracle(tmp_path):
    out = tmp_path / "spectral"
    p = run(["benchmarks/bench_spectral.py", "--models", "resnet18", "--masks", "1", "--baseline-masks", "1",
             "--population", "2", "--rounds", "1", "--chunk-masks", "1", "2", "--out", str(out)])
    assert p.returncode == 0, p.stderr[-3000:]
    text = Path(f"{out}.md").read_text()
    oracle = re.search(r"engine vs dense oracle max rel diff ([0-9.e+-]+) over every metric, inf/NaN equal (\w+)", text)
    assert oracle and float(oracle.group(1)) < 1e-9 and oracle.group(2) == "True", text
    base = re.search(r"engine vs authors' method \(float32\) max rel diff ([0-9.e+-]+), inf/NaN equal (\w+)", text)
    assert base and float(base.group(1)) < 1e-3 and base.group(2) == "True", text  # float32 eigsh: ~1e-5
    df = pd.read_csv(f"{out}.csv")
    cols = ["authors' method s/mask", "layer_spectrum per layer s/mask", "engine per mask s/mask", "batched P=2 s/mask"]
    assert (df[cols] > 0).all().all()
    assert df["engine vs authors"].to_numpy() == pytest.approx(
        (df["authors' method s/mask"] / df["engine per mask s/mask"]).to_numpy())
    assert "masks per chunk" in text and "Where a ResNet18 mask's CPU time goes" in text


def test_compiled_lanczos_benchmark_skips_without_numba(tmp_path):
    out = tmp_path / "compiled.md"
    p = run(["benchmarks/bench_compiled_lanczos.py", "--out", str(out)], prelude="import sys; sys.modules['numba'] = None")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "skipped, numba is not installed" in p.stderr
    assert not out.exists()


def test_allocator_benchmark_runs_both_settings(tmp_path):
    out = tmp_path / "allocator.md"
    p = run(["benchmarks/bench_allocator.py", "--processes", "1", "--masks", "1", "--rounds", "1", "--out", str(out)])
    assert p.returncode == 0, p.stderr[-3000:]
    text = out.read_text()
    rows = re.findall(r"^\| (default|MALLOC_TOP_PAD_=\d+) \| 1 \| ([0-9.]+) \| ([0-9.]+) \| (\d+) \|$", text, re.M)
    assert [r[0] for r in rows] == ["default", "MALLOC_TOP_PAD_=67108864"], text
    assert all(float(r[1]) > 0 and float(r[2]) > 0 for r in rows)
    assert "n = 1 per setting" in text
