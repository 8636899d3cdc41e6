"""The trial both tuners run in the overhead benchmark: print one loss line and exit."""

import sys

x = float(sys.argv[1])
print(f"loss={(x - 2) ** 2}")
