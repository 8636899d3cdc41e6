"""Which EKS-optimized AMI type an EKS node group's instance types boot, so a GPU group gets the
NVIDIA drivers and a study mixing instance types no one AMI serves is refused when it is submitted.

A managed node group boots one AMI type for all its instance types, and EKS's default is a
standard x86 AMI: no NVIDIA driver (GPU nodes never offer ``nvidia.com/gpu``, so trials asking
for GPUs stay Pending), no Neuron driver, and no ARM64 build (Graviton nodes fail to join).
katuna sends the Amazon Linux 2023 type (Amazon Linux 2 AMIs end with Kubernetes 1.32) that the
instance family needs: the NVIDIA one for the P and G families (g5g on ARM64), the Neuron one for
Inferentia and Trainium, the ARM64 one for Graviton (a ``g`` right after the generation: m7g,
c6gn, r8gd), the standard x86 one otherwise. g4ad's AMD GPUs have no EKS-optimized AMI with
their driver: it gets the standard one, as any family katuna does not know. A family no Amazon
Linux 2023 AMI boots (a1; p2, g3 and g3s, whose GPUs its NVIDIA driver dropped) is refused when
the study is submitted.
"""

from __future__ import annotations

import re

X86, ARM, X86_NVIDIA, ARM_NVIDIA, NEURON = ("AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD",
                                            "AL2023_x86_64_NVIDIA", "AL2023_ARM_64_NVIDIA", "AL2023_x86_64_NEURON")
_FAMILY = re.compile(r"([a-z]+)(\d+)([a-z0-9-]*)")
_NVIDIA_SERIES = ("p", "g", "gr")
_NEURON_SERIES = ("inf", "trn")
_NOT_NVIDIA = frozenset({"g4ad"})
"""Families of a GPU series whose GPUs are not NVIDIA's."""


def ami_type(instance_type: str) -> str:
    """The EKS AMI type a node of ``instance_type`` (``g5.xlarge``) needs."""
    family = instance_type.split(".", 1)[0].lower()
    match = _FAMILY.fullmatch(family)
    if match is None:
        return X86
    series, _, rest = match.groups()
    arm = rest.startswith("g") or "-gb" in rest
    if series in _NEURON_SERIES:
        return NEURON
    if series in _NVIDIA_SERIES and family not in _NOT_NVIDIA:
        return ARM_NVIDIA if arm else X86_NVIDIA
    return ARM if arm else X86


def offers_nvidia_gpus(instance_type: str) -> bool:
    """Whether a node of ``instance_type`` can offer ``nvidia.com/gpu`` (once NVIDIA's device
    plugin runs there): only an NVIDIA GPU family, which boots an NVIDIA AMI type; every other
    boots an AMI without NVIDIA's driver."""
    return ami_type(instance_type) in (X86_NVIDIA, ARM_NVIDIA)


UNSUPPORTED = {"a1": "Amazon Linux 2023 does not run on A1 instances",
               "p2": "the NVIDIA driver of EKS's Amazon Linux 2023 AMI no longer supports its K80 GPUs",
               "g3": "the NVIDIA driver of EKS's Amazon Linux 2023 AMI no longer supports its M60 GPUs",
               "g3s": "the NVIDIA driver of EKS's Amazon Linux 2023 AMI no longer supports its M60 GPUs"}
"""Families no Amazon Linux 2023 AMI of EKS boots, and why."""


def unsupported_problem(instance_types: tuple[str, ...]) -> str | None:
    """Why a node group cannot launch one of ``instance_types`` (a family no Amazon Linux 2023
    AMI of EKS supports); None when it can."""
    for instance_type in instance_types:
        why = UNSUPPORTED.get(instance_type.split(".", 1)[0].lower())
        if why is not None:
            return f"{instance_type}: {why}; expected a newer family (m7g for a1, g4dn or g5 for GPUs)"
    return None


def mixed_problem(instance_types: tuple[str, ...]) -> str | None:
    """Why one node group cannot launch all of ``instance_types`` (they need different AMI
    types); None when one AMI type serves them all."""
    needs: dict[str, list[str]] = {}
    for instance_type in instance_types:
        needs.setdefault(ami_type(instance_type), []).append(instance_type)
    if len(needs) < 2:
        return None
    described = "; ".join(f"{', '.join(types)}: {ami}" for ami, types in needs.items())
    return f"expected instance types that boot the same EKS AMI type (a node group boots one): {described}"
