"""The study API: submit, list, inspect, stop and delete studies; read trials, their logs and
the best of them; the health probes and the OpenAPI document.

Its operations are split by what they act on: the service itself (:mod:`._service`), studies
(:mod:`._studies`) and trials (:mod:`._trials`), each added to one blueprint
(:mod:`._blueprint`) as it is imported.
"""

# Each module adds its operations to the blueprint as it is imported.
from functions.adapters.web.api import _service, _studies, _trials  # noqa: F401
from functions.adapters.web.api._blueprint import StudyName, TrialNumber, blueprint, find_trial
from functions.adapters.web.api._service import READY_PATH, TOLD_WHY

__all__ = ["READY_PATH", "TOLD_WHY", "StudyName", "TrialNumber", "blueprint", "find_trial"]
