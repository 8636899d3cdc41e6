"""Cloud node pools for trials: the GKE and EKS adapters of the node-pool port, and the
provisioning script (``python -m infra.provision``)."""
