"""katuna: hyperparameter tuning as event-driven functions.

The application lives in layers: ``functions.core`` (pure model, search space, samplers and the
ports), ``functions.handlers`` (one module per event type, acting through the ports),
``functions.adapters`` (the store, executors, web app) and the composition root that wires them.
"""

__version__ = "0.1.0"
"""The distribution's version, as ``pyproject.toml`` declares it."""
