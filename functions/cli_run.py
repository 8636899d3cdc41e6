"""The ``katuna`` commands about study files: run one, convert it to a native study, render a
trial's Job. Each is declared here, with its options and help; what it does is in
:mod:`functions.cli_study_run` (``run``) and :mod:`functions.cli_study_files` (the others),
imported as it runs, so that ``katuna run --help`` loads neither the runner nor Optuna."""

from __future__ import annotations

import click

from functions.cli_common import ReadingCommand, TuningCommand, db_option

study_file = click.argument("file", type=click.Path(exists=True, dir_okay=False))


@click.command(cls=TuningCommand)
@study_file
@db_option
def run(file: str, db: str | None) -> None:
    """Run the study in FILE to completion (resuming it if it was interrupted).

    Exit 0 when the study completed, 1 when it failed or was stopped, 2 for an invalid study or
    setup. Ctrl-C, kill or a hang-up stops the running trials and exits 128 + the signal's
    number (130 for Ctrl-C); the same command then resumes the study.
    """
    from functions.cli_study_run import run_study

    run_study(file, db)


@click.command(cls=ReadingCommand)
@study_file
def convert(file: str) -> None:
    """Print the native study equivalent of FILE: a Katib Experiment (kubeflow.org/v1beta1), a
    Katib StudyJob (kubeflow.org/v1alpha1), a katuna.dev/v1 Study resource, or a native study."""
    from functions.cli_study_files import convert_study

    convert_study(file)


@click.command(cls=TuningCommand)
@study_file
@click.option("--params", "assignments", multiple=True, metavar="NAME=VALUE",
              help="One parameter's value; repeat the option for each parameter that applies "
                   "(--params a=1 --params b=2). Default: the study's first trial (its first "
                   "initialTrials entry, else the sampler's first suggestion).")
def render(file: str, assignments: tuple[str, ...]) -> None:
    """Print the Kubernetes Job of a trial of the study in FILE (no cluster needed)."""
    from functions.cli_study_files import render_job

    render_job(file, assignments)
