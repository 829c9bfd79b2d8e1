"""Open Job Description: template import (controller side) and the session runner (worker side).

plan = plan_job(template_text, {"Frames": "1-10"})       # raises TemplateError
stored = plan.to_json()                                   # the controller stores this
runner = OpenJDSessionRunner(stored, working_dir=lane_dir, on_log_line=...)
outcome = runner.run_task("Render", plan.steps[0].task_parameters(3))
runner.close()
"""

from thresher.openjd.chunking import ChunkItems, adapt_chunk_size
from thresher.openjd.errors import TemplateError, TemplateIssue
from thresher.openjd.host_requirements import HostFilters, host_filters
from thresher.openjd.runner import LogLine, LogSource, OpenJDSessionRunner, TaskOutcome
from thresher.openjd.steps import StepPlan
from thresher.openjd.template import (
    EXTENSIONS,
    PLAN_FORMAT,
    JobPlan,
    ParsedTemplate,
    PlanCache,
    load_environment_template,
    load_template,
    plan_job,
)

__all__ = [
    "EXTENSIONS",
    "PLAN_FORMAT",
    "ChunkItems",
    "HostFilters",
    "JobPlan",
    "LogLine",
    "LogSource",
    "OpenJDSessionRunner",
    "ParsedTemplate",
    "PlanCache",
    "StepPlan",
    "TaskOutcome",
    "TemplateError",
    "TemplateIssue",
    "adapt_chunk_size",
    "host_filters",
    "load_environment_template",
    "load_template",
    "plan_job",
]
