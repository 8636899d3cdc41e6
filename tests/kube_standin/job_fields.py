"""The fields of a Job that its schema does not have, as the API server's decoder finds them:
under ``fieldValidation=Strict`` a 400 ("strict decoding error: unknown field ..."), under
``Warn`` (the default) a warning for each, under ``Ignore`` nothing; either way they are
dropped. The schema is Kubernetes' own OpenAPI, as ``kubernetes-validate`` ships it
(:mod:`kube_standin.decoding`)."""

from __future__ import annotations

from kube_standin import decoding


def unknown_fields(job: dict) -> list[str]:
    """Each field of ``job`` its schema does not list, by its path (``spec.template.spec.containers[0].comand``)."""
    return decoding.unknown_fields("Job", job)
