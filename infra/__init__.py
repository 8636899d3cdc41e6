"""Cloud node pools for trials: the GKE and EKS adapters of the node-pool port, and the
provisioning script (``python -m infra.provision``)."""

__version__ = "0.1.0"
"""The distribution's version, as ``pyproject.toml`` declares it (one distribution ships both packages)."""
