"""A trial for the tests: records its argv and one environment variable as JSON, then reports loss=1."""

import json
import os
import sys

with open(os.path.join(os.environ["ARGV_DIR"], f"{os.environ['KATUNA_TRIAL']}.json"), "w") as handle:
    json.dump({"argv": sys.argv[1:], "env": os.environ.get("VALUE")}, handle)
print("loss=1")
