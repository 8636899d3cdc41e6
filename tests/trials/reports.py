"""A trial for the tests: reports the objective ``loss`` once per comma-separated value of
``--values`` (``nan``, ``inf``, numbers, as written), the way ``--how`` says: ``text``
(``loss=VALUE`` lines) or ``json`` lines on its output, ``file`` (text lines in ``--path``), or
``tfevent`` (TF1 scalars, one step each, in an event file under the folder ``--path``); on the
output, ``--sleep`` seconds after each report."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent.parent)]

import tfevent_writer  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--how", choices=("text", "json", "file", "tfevent"), required=True)
parser.add_argument("--values", required=True)
parser.add_argument("--path")
parser.add_argument("--sleep", type=float, default=0.0)
args = parser.parse_args()
values = args.values.split(",")
if args.how == "tfevent":
    events = [tfevent_writer.event(step, [("loss", float(v))], tfevent_writer.SIMPLE) for step, v in enumerate(values)]
    tfevent_writer.write(Path(args.path) / "events.out.tfevents.1.katuna", events)
elif args.how == "file":
    Path(args.path).write_text("".join(f"loss={v}\n" for v in values))
else:
    for value in values:
        print(json.dumps({"loss": value}) if args.how == "json" else f"loss={value}", flush=True)
        time.sleep(args.sleep)
