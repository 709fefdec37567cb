"""The chaos soak, short (what CI runs of ``bench/chaos.py``): mixed tenant
operations over the API while conductor workers (at random and the owner of a
running job), ZooKeeper and NFS-Ganesha are SIGKILLed and ZooKeeper is once
stopped (SIGSTOP) for longer than the sessions last; afterwards, and again
after everything is deleted, the API, database, btrfs, Ganesha and the
jobboard agree, nothing is stuck, nothing leaked, and no request got a 5xx
(other than a 503 while ZooKeeper was down), went unanswered or was slow."""

from __future__ import annotations

import json

from tests.fixtures.chaos import Infrastructure, Soak, SoakConfig
from tests.fixtures.chaos_faults import KINDS
from tests.fixtures.storage import _require_stack

SHORT = SoakConfig(
    operations=50, max_seconds=90, clients=3, shares_per_client=4,
    kills={"conductor-random": 2, "conductor-aimed": 3, "zookeeper": 1, "zookeeper-pause": 1, "ganesha": 2},
    kill_interval=1.0, zk_grace=12.0, slow_answer=10.0, settle_timeout=120,
)


def test_short_chaos_soak_leaves_everything_consistent(tmp_path):
    _require_stack()
    with Infrastructure(tmp_path / "chaos", workers=3, pool_gb=64) as infra:
        result = Soak(infra.stack, infra.zk, SHORT).run()
        logs = infra.stack.log("pool")[-6000:]
    stats = result["stats"]
    summary = json.dumps({k: result[k] for k in ("failures", "ghosts", "harness_errors")}
                         | {"outcomes": stats["outcomes"], "kills": stats["kills"],
                            "op_errors": stats["op_errors"][:10]}, indent=1)

    assert not result["harness_errors"], summary
    # The chaos happened: every kind of kill, and the operations ran through it.
    for kind in KINDS:
        if kind != "conductor-aimed":
            assert stats["kills"].get(kind, 0) == SHORT.kills[kind], summary
    assert stats["kills"].get("conductor-aimed", 0) >= 1, summary
    assert stats["zk_restarted_by"], summary
    assert result["operations"] == SHORT.operations, summary
    ok = sum(n for key, n in stats["outcomes"].items() if key.endswith(" ok") and not key.startswith("client-view"))
    assert ok >= SHORT.operations // 2, summary
    # ... and found nothing wrong.
    assert result["settled"], summary
    assert result["reconcile_live"]["ok"] and result["reconcile_drained"]["ok"], summary
    assert result["passed"], summary + "\n" + logs
