"""A trial for the tests: records its argv, one environment variable and its standard input
(where it is no terminal) as JSON, then reports loss=1."""

import json
import os
import sys

stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
with open(os.path.join(os.environ["ARGV_DIR"], f"{os.environ['KATUNA_TRIAL']}.json"), "w") as handle:
    json.dump({"argv": sys.argv[1:], "env": os.environ.get("VALUE"), "stdin": stdin}, handle)
print("loss=1")
