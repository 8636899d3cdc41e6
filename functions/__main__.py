"""``python -m functions``: the same as the ``katuna`` command."""

from functions.entry import main

main()
