"""The node pool uses: which study asked for which pool, its phase, and the nodes it ran on.

Kept apart from the studies' tables: the provision and node-hours handlers read and write pool
uses across studies, by phase, pool and release time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from functions.adapters.sqlite_connection import SqliteConnection, dumps, loads
from functions.core.node_hours import NodeLife
from functions.core.pool_use import PoolUse


class SqlitePoolUses(SqliteConnection):
    """The node pool uses, on the store's connection."""

    def pool_use(self, uid: str) -> PoolUse | None:
        rows = self._rows("SELECT * FROM node_pools WHERE uid = ?", [uid])
        return self._pool_use(rows[0]) if rows else None

    def save_pool_use(self, use: PoolUse) -> None:
        row = dataclasses.asdict(use)
        row["machine_types"] = dumps(list(use.machine_types))
        row["adopted"] = None if use.adopted is None else dumps(dict(use.adopted))
        row["nodes"] = dumps([life.to_dict() for life in use.nodes])
        columns = ", ".join(f"[{column}]" for column in row)
        self.db.execute(f"INSERT OR REPLACE INTO node_pools ({columns}) VALUES ({', '.join('?' * len(row))})",
                        list(row.values()))

    def pool_uses(self, phases: Sequence[str] = (), pool: str | None = None,
                  released_after: float | None = None) -> list[PoolUse]:
        sql, args = "SELECT * FROM node_pools WHERE 1", list[Any]()
        if released_after is not None:
            sql += " AND (released_at IS NULL OR released_at > ?)"
            args.append(released_after)
        if phases:
            sql += f" AND phase IN ({', '.join('?' * len(phases))})"
            args += list(phases)
        if pool is not None:
            sql += " AND pool = ?"
            args.append(pool)
        return [self._pool_use(row) for row in self._rows(sql + " ORDER BY requested_at", args)]

    @staticmethod
    def _pool_use(row: dict[str, Any]) -> PoolUse:
        fields = dict(row)
        fields.update(machine_types=tuple(loads(row["machine_types"]) or ()), shared=bool(row["shared"]),
                      created=bool(row["created"]), owned=bool(row["owned"]), adopted=loads(row["adopted"]),
                      deleted=bool(row["deleted"]), empty_asked=bool(row["empty_asked"]),
                      emptied=bool(row["emptied"]), message=row["message"] or "",
                      nodes=tuple(NodeLife.from_dict(life) for life in loads(row["nodes"]) or ()),
                      nodes_problem=row["nodes_problem"] or "")
        return PoolUse(**fields)
