"""bench/scale.py end to end at a tiny size: every figure is measured and printed.

Not a timing test: it asserts that the benchmark runs ``shareflow run``,
fills the pool through the API, goes through every phase and reports every
figure (with its ratio to N=0), whatever the figures are; and that it leaves
nothing mounted behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THROUGHPUT = ((3, 0.05), (2, 0.5))


# About two minutes (two `shareflow run` starts and a restart per population).
@pytest.mark.bench
def test_scale_benchmark_prints_every_figure(tmp_path):
    out = tmp_path / "out"
    result_file = tmp_path / "scale.json"
    spec = ",".join(f"{k}:{p}" for k, p in THROUGHPUT)
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "scale.py"), "--shares-on-pool", "0,3", "--ops", "3",
         "--throughput", spec, "--list-requests", "2", "--prepopulate-clients", "3",
         "--json", str(result_file), "--out", str(out)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    doc = json.loads(result_file.read_text())
    assert [r["shares_on_pool"] for r in doc["results"]] == [0, 3]
    expected = ["create p50 ms", "create p99 ms", "delete p50 ms", "delete p99 ms",
                "restart: start -> first exports served s",
                "allow -> active p50 ms", "GET /shares/detail p50 ms", "GET /shares p50 ms",
                "restart: start -> every export served s", "restart: conductor pool start -> served s"]
    for k, p in THROUGHPUT:
        expected += [f"creates/s, {k} clients polling {p:g} s", f"deletes/s, {k} clients polling {p:g} s"]
    for n, figures in doc["figures"].items():
        missing = [name for name in expected if figures.get(name) is None]
        assert not missing, f"N={n}: no figure for {missing}"
        for kind in ("api", "conductor workers", "zookeeper", "ganesha"):
            assert figures.get(f"CPU s, sequential: {kind}") is not None, f"N={n}: no CPU figure for {kind}"
    big = doc["results"][1]
    assert big["live_shares"] == 3 and big["prepopulate"]["created"] == 3
    assert big["restart"]["exports"] == 3 + 3  # and the access phase's 3 shares
    assert big["lists"]["/shares/detail"]["shares"] == 3
    # Printed, with ratios to the N=0 column.
    for name in expected:
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(name)), None)
        assert line is not None, f"{name!r} not printed:\n{proc.stdout}"
        assert line.count("x)") == 2, line  # both cells carry their ratio to N=0 (1.00x and N=3's)
    assert (out / "run.log").exists()
    # Its private directory is unmounted and gone.
    base = re.search(r"state in (\S+)", proc.stderr).group(1)
    assert f" {base}/" not in Path("/proc/self/mountinfo").read_text()
    assert not Path(base).exists()
