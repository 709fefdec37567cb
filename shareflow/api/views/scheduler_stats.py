"""Manila's scheduler-stats views: a pool's name (``host@backend#pool``),
host, backend and pool; its capabilities in the detailed list."""

from __future__ import annotations

SUMMARY = ("name", "host", "backend", "pool")


def pools(pools: list[dict], *, detail: bool) -> dict:
    keys = SUMMARY + (("capabilities",) if detail else ())
    return {"pools": [{k: pool.get(k) for k in keys} for pool in pools]}
