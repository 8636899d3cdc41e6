"""``python -m functions``: the same as the ``katuna`` command."""

from functions.cli import main

main()
