"""The pure core: study model, search space, samplers, stop rules, metrics, events, ports.

Nothing here performs I/O or imports a web, event, Kubernetes, cloud or storage library;
an import-linter contract in ``pyproject.toml`` (checked by the test suite) keeps it so.
"""
