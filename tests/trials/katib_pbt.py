"""A trial as Katib's population-based training example runs it (``simple-pbt``'s
``pbt_test.py``): it resumes from ``training.ckpt`` in the folder ``--checkpoint`` names when
the file is there (a child trial's folder starts as a copy of its parent's), trains
``--epochs`` steps of a toy problem whose best learning rate follows a triangle wave of the
accuracy, saves the checkpoint and prints ``epoch N:``, ``lr=`` and ``Validation-accuracy=`` as
Katib's does. No randomness, so a test can tell what each trial should print: the checkpoint
is JSON rather than a pickle, and it also keeps the trials that wrote it, in order
(``KATUNA_TRIAL``), so a test sees whose checkpoint a trial resumed from. ``--fail-at=N`` fails
(exit 1) once the checkpoint has ``N`` steps, ``--grow=BYTES`` writes a file of that size.
``--save-when-stopped=FOLDER`` trains until stopped, then saves its checkpoint (as a trial told
to stop saves its work), writing ``started-N`` and ``saved-N`` to ``FOLDER`` as it does each."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

STOP_WORK = 1.5
"""Seconds a trial told to stop works before it saves: within katuna's grace of 3 s."""
MIDPOINT = 50.0
"""The accuracy (out of 100) past which the best learning rate decreases."""


def step(accuracy: float, lr: float) -> float:
    """One training step: fastest where ``lr`` is the optimum for the accuracy reached."""
    optimal = 0.01 * accuracy / MIDPOINT if accuracy < MIDPOINT else 0.01 - 0.01 * (accuracy - MIDPOINT) / MIDPOINT
    optimal = min(0.01, max(0.001, optimal))
    error = max(lr, optimal) / min(lr, optimal)
    gained = 3.0 / error if error < 3 else 0.5 / error
    return max(0.0, min(100.0, accuracy + gained))


def save(path: str, state: dict) -> None:
    """The checkpoint ``state`` written to ``path``, its folder made where it is not there."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as saved:
        json.dump(state, saved)


def save_when_stopped(path: str, state: dict, folder: str) -> int:
    """Wait to be stopped, then save the checkpoint, after a moment's work (SIGTERM's grace)."""
    trial = os.environ.get("KATUNA_TRIAL", "-1")

    def stopped(signum: int, frame: object) -> None:
        time.sleep(STOP_WORK)
        save(path, state)
        with open(os.path.join(folder, f"saved-{trial}"), "w"):
            pass
        os._exit(143)

    signal.signal(signal.SIGTERM, stopped)
    with open(os.path.join(folder, f"started-{trial}"), "w"):
        pass
    while True:
        signal.pause()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--fail-at", type=int)
    parser.add_argument("--grow", type=int, default=0)
    parser.add_argument("--save-when-stopped")
    options = parser.parse_args()
    path = os.path.join(options.checkpoint, "training.ckpt")
    state = {"step": 1, "accuracy": 0.0, "trials": []}
    if os.path.exists(path):
        with open(path) as saved:
            state = json.load(saved)
    else:
        os.makedirs(options.checkpoint, exist_ok=True)
    if options.fail_at is not None and state["step"] >= options.fail_at:
        print(f"failing at step {state['step']}", file=sys.stderr)
        return 1
    if options.save_when_stopped:
        return save_when_stopped(path, state, options.save_when_stopped)
    for _ in range(options.epochs):
        state["accuracy"] = step(state["accuracy"], options.lr)
        state["step"] += 1
    state["trials"].append(int(os.environ.get("KATUNA_TRIAL", "-1")))
    with open(path, "w") as saved:
        json.dump(state, saved)
    if options.grow:
        with open(os.path.join(options.checkpoint, "weights.bin"), "wb") as weights:
            weights.write(b"\0" * options.grow)
    print(f"epoch {state['step']}:\nlr={options.lr:0.4f}\nValidation-accuracy={state['accuracy'] / 100:0.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
