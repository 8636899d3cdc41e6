"""Which GKE machine types can carry which GPUs, so a study asking for an impossible pair is
refused when it is submitted rather than when GKE refuses its node pool.

Compute Engine attaches GPUs to N1 machine types (not the shared-core ones) and to the
accelerator-optimized series, which come with one GPU model each: G2 with L4, A2 with A100,
A3 with H100 or H200, A4 with B200. Every other series takes none. Only what is known to be
impossible is refused: a series katuna does not know is left for GKE to judge.
"""

from __future__ import annotations

N1_GPUS = ("nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-p100", "nvidia-tesla-p4")
"""The GPU models that attach to N1 machine types."""

BUILT_IN = {"g2-standard": "nvidia-l4", "a2-highgpu": "nvidia-tesla-a100", "a2-megagpu": "nvidia-tesla-a100",
            "a2-ultragpu": "nvidia-a100-80gb", "a3-highgpu": "nvidia-h100-80gb", "a3-edgegpu": "nvidia-h100-80gb",
            "a3-megagpu": "nvidia-h100-mega-80gb", "a3-ultragpu": "nvidia-h200-141gb", "a4-highgpu": "nvidia-b200"}
"""The GPU model each accelerator-optimized machine family comes with, by ``<series>-<family>``."""

NO_GPUS = frozenset({"e2", "n2", "n2d", "n4", "n4d", "c2", "c2d", "c3", "c3d", "c4", "c4a", "c4d", "t2a", "t2d",
                     "m1", "m2", "m3", "m4", "h3", "z3", "f1", "g1"})
"""Machine series that take no GPU (``f1-micro`` and ``g1-small`` are N1's shared-core types)."""


def accelerator_problem(machine: str, accelerator: str) -> str | None:
    """Why a GKE node of ``machine`` cannot carry ``accelerator``; None when it can or when
    the machine series is one katuna does not know."""
    series = machine.split("-", 1)[0]
    family = "-".join(machine.split("-")[:2])
    if series in NO_GPUS:
        return (f"machine type {machine} takes no GPU: GPUs attach to n1 machine types ({', '.join(N1_GPUS)}), "
                "or come with the accelerator-optimized ones (g2: nvidia-l4, a2: nvidia-tesla-a100, "
                "a3: nvidia-h100-80gb)")
    if series == "n1" and accelerator not in N1_GPUS:
        return f"n1 machine types take {', '.join(N1_GPUS)}, not {accelerator}"
    if family in BUILT_IN and accelerator != BUILT_IN[family]:
        return f"machine type {machine} comes with {BUILT_IN[family]}, not {accelerator}"
    return None
