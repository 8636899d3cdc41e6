"""The ``katuna`` commands about study files: run one, convert it to a native study, render a
trial's Job. Each is declared here, with its options and help; what it does is in
:mod:`functions.cli_study_run` (``run``) and :mod:`functions.cli_study_files` (the others),
imported as it runs, so that ``katuna run --help`` loads neither the runner nor Optuna."""

from __future__ import annotations

import click

from functions.cli_common import ReadingCommand, TuningCommand, db_option
from functions.cli_help import CTRL_C, ending

study_file = click.argument("file", type=click.Path(exists=True, dir_okay=False))


@click.command(cls=TuningCommand, epilog=ending(
    ("katuna run digits.yaml", "katuna run digits.yaml --db runs.db"),
    (("0", "the study completed"),
     ("1", "the study ended failed or stopped (again on each later run of it), or another process deleted it"),
     ("2", "an invalid study (each problem named, nothing stored), a changed study under a stored name, a "
           "study another katuna process runs, an unusable database or trial-log folder, a bad KATUNA_* "
           "setting"),
     ("128+N", "ended by signal N (Ctrl-C 130, SIGHUP 129, SIGTERM 143) after stopping its trials: run it "
               "again to resume"))))
@study_file
@db_option
def run(file: str, db: str | None) -> None:
    """Run the study in FILE to completion (resuming it if it was interrupted). Ctrl-C, kill
    or a hang-up stops the running trials; the same command then resumes the study."""
    from functions.cli_study_run import run_study

    run_study(file, db)


@click.command(cls=ReadingCommand, epilog=ending(
    ("katuna convert experiment.yaml > study.yaml",),
    (("0", "done"), ("2", "a file that is no valid study, each problem named"), ("130", CTRL_C))))
@study_file
def convert(file: str) -> None:
    """Print the native study equivalent of FILE: a Katib Experiment (kubeflow.org/v1beta1), a
    Katib StudyJob (kubeflow.org/v1alpha1), a katuna.dev/v1 Study resource, or a native study."""
    from functions.cli_study_files import convert_study

    convert_study(file)


@click.command(cls=TuningCommand, epilog=ending(
    ("katuna render digits.yaml", "katuna render digits.yaml --params hidden=64 --params lr=0.01 > job.yaml"),
    (("0", "done"), ("2", "a file that is no valid study, or --params that are no trial of it, each problem "
                          "named"), ("130", CTRL_C))))
@study_file
@click.option("--params", "assignments", multiple=True, metavar="NAME=VALUE",
              help="One parameter's value; repeat the option for each parameter that applies "
                   "(--params a=1 --params b=2). Default: the study's first trial (its first "
                   "initialTrials entry, else the sampler's first suggestion).")
def render(file: str, assignments: tuple[str, ...]) -> None:
    """Print the Kubernetes Job of a trial of the study in FILE (no cluster needed)."""
    from functions.cli_study_files import render_job

    render_job(file, assignments)
