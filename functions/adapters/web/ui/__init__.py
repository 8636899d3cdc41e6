"""The dashboard at ``/ui/``: server-rendered pages over the same store the API reads.

Studies list, study page (summary and Optuna's charts), trial table (sorted, filtered and
paged in SQL, refreshed while the study runs, exported as CSV), trial page (parameters,
metrics, observations, the log tailed while it runs), the new-study form (which posts to the
API's ``POST /studies``, and restarts an ended study with its trial budget raised) and the
login form used when ``KATUNA_API_TOKEN`` is set.
"""

# Each module adds its pages (or filters) to the blueprint as it is imported.
from functions.adapters.web.ui import _charts, _filters, _session, _studies, _trials  # noqa: F401
from functions.adapters.web.ui._blueprint import blueprint, error_page
from functions.adapters.web.ui._paths import is_form_path, is_open_path, is_page
from functions.adapters.web.ui._studies import STUDIES_SHOWN
from functions.adapters.web.ui._trials import LOG_CHUNK

__all__ = ["LOG_CHUNK", "STUDIES_SHOWN", "blueprint", "error_page", "is_form_path", "is_open_path", "is_page"]
