"""Running many exposures: a local process pool by default, Dask distributed on request.

``run_many(step, inputs, jobs=..., scheduler=..., overwrite=..., **parameters)`` runs a
step or pipeline on files, globs and associations and returns one ``TaskResult`` per
input (Level 2 association product); ``report(results)`` formats them for people.
``with using(scheduler or jobs=N):`` runs the per-exposure work of Stage 3 inside the block
as tasks (calwebb.parallel.executor).
"""

from calwebb.parallel.executor import using
from calwebb.parallel.many import report, run_many
from calwebb.parallel.tasks import TaskResult

__all__ = ["TaskResult", "report", "run_many", "using"]
