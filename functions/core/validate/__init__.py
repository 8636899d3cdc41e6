"""Parse and validate the native study format, reporting every problem at once.

Each problem names its field path (``parameters[1].max``) and what was expected. Unknown
fields are problems too, so a misspelt key is caught instead of silently ignored.

List values a trial or the sampler cannot tell apart (:mod:`functions.core.choices`) are
problems of a new study only: one stored before that check was made is taken as it was when it
is submitted again to resume it, edited or restarted, so the caller says which names are stored.
"""

from functions.core.validate._collector import COLLECTOR_FORMATS, COLLECTOR_KINDS, NON_FINITE_RULES, STEP_RULES
from functions.core.validate._parameters import PARAMETER_TYPES
from functions.core.validate._study import TOP_FIELDS, none_stored, parse_study

__all__ = [
    "COLLECTOR_FORMATS", "COLLECTOR_KINDS", "NON_FINITE_RULES", "PARAMETER_TYPES", "STEP_RULES", "TOP_FIELDS",
    "none_stored", "parse_study",
]
