"""The one way a submission becomes a job: `compile_job` (command and engine jobs, the
accsyn-shaped payload included) and `compile_template` (OpenJD, also what the Deadline Cloud
and renderacre routes receive) turn a request into one `JobSpec`.

Each field is parsed and checked once, here: frame sets become task counts, engines check
their fields, scheduling fields are completed from the job's defaults, dependencies and
limits are looked up. Checks that do not depend on each other all run, and everything they
refuse is raised together (`core.errors.Problems`), each problem naming its field. The store
then keeps the spec as it is.
"""

from __future__ import annotations

from thresher.controller.compile.jobs import compile_job
from thresher.controller.compile.lookup import Lookup
from thresher.controller.compile.openjd import compile_template, plan_template, template_summary
from thresher.controller.compile.policy import SubmitPolicy

__all__ = [
    "Lookup",
    "SubmitPolicy",
    "compile_job",
    "compile_template",
    "plan_template",
    "template_summary",
]
