"""A loopback Kubernetes API server with the controllers katuna relies on: namespaces and RBAC
from the repository's manifests, a Job controller, a scheduler, kubelets that run a pod's
command as a local process, a cluster autoscaler, pod garbage collection and watches; on the
machine's clock, or on a simulated one with simulated containers and spot interruptions.

Each module plays one part of a real cluster; :class:`kube_stub.KubeStub` puts them together.
"""
