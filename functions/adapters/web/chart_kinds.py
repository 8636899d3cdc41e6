"""The charts the study page draws, by the names its URLs give them: a list the routes check
without loading Optuna's visualization stack (:mod:`functions.adapters.web.plots`)."""

CHARTS = ("history", "parallel", "slice", "contour", "importance", "intermediate", "pareto")
PARAM_CHARTS = ("slice", "contour")
"""The charts drawn for the parameters the page picks: the others are kept whatever it picks."""
OBJECTIVE_CHARTS = ("history", "parallel", "slice", "contour", "importance")
"""The charts drawn for the objective the page picks (of a study of several): the Pareto front
draws them all and the intermediate values none, so the pick is no part of what they are drawn
for, nor of their cache key."""
