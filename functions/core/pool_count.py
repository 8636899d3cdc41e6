"""How many node pools katuna's studies hold at once, against ``KATUNA_MAX_POOLS``.

A study holds its pool from when it is stored until its pool use is given back (the pool
deleted, or scaled back): the pools held are the distinct pools of the running studies and of
the pool uses not yet released. Studies that share a pool hold it once, so a study whose pool
is held already adds none; any other is one more, whether katuna creates it or finds it.
"""

from __future__ import annotations

from collections.abc import Iterable

from functions.core.errors import Problem, TooManyPools
from functions.core.limits import PREFIX
from functions.core.nodepool import NodePool
from functions.core.pool_use import CREATING, READY, RELEASING, PoolUse

HOLDING = (CREATING, READY, RELEASING)
"""The phases of a pool use whose pool is held: asked for and not yet given back."""


def held_pools(uses: Iterable[PoolUse], running: Iterable[NodePool] = ()) -> set[tuple[str, str]]:
    """The pools held, as (provider, name): those of the pool uses in :data:`HOLDING` and those
    the ``running`` studies ask for."""
    return {(use.provider, use.pool) for use in uses} | {(pool.provider, pool.name) for pool in running}


def pools_full(pool: NodePool, held: set[tuple[str, str]], limit: int) -> TooManyPools | None:
    """The refusal of a study asking for ``pool``, which would hold one pool more than
    ``limit``; None when its pool is held already or there is room."""
    if (pool.provider, pool.name) in held or len(held) < limit:
        return None
    return TooManyPools(f"katuna's studies hold {len(held):,} node pools, the most they may hold at once "
                        f"(set by {PREFIX}MAX_POOLS)")


def pools_problem(pool: NodePool, held: set[tuple[str, str]], limit: int) -> Problem | None:
    """Why a study asking for ``pool`` would hold one pool more than ``limit`` (:func:`pools_full`)."""
    full = pools_full(pool, held, limit)
    return full.problems[0] if full is not None else None
