"""The executor on one host: Dagster's multiprocess executor, except that a run with a single
step runs it in the run's own process.

Materialising one table or one log source (the UI's "Materialize selected", the CLI's
`dagster asset materialize --select`, a schedule's one-source FTP job) is the common run. Under
plain multiprocess it starts a step process beside the run worker: a second Python start,
Dagster import and code location load (1-1.5 CPU-s on two cores, ~150 MB) to run one step that
the run worker could run itself. With two or more steps the multiprocess executor is used as
configured, so steps still run side by side and a crash kills one step, not the run.

Configuration is the same selector as Dagster's default executor (`multiprocess:` with its
options, or `in_process:`), plus `multiprocess: {single_step_in_process: false}` to keep a step
process even for one step. Figures: docs/performance.md (launch to first row).

Interrupts: Dagster turns an interrupt inside a step that has a RetryPolicy into a retry of
the step ("respect retry policy when interrupts occur"). Under multiprocess the run's process
is the one interrupted and stops; in one process nothing would, so SIGTERM or the UI's
Terminate would start the step again. Here a retry caused by an interrupt ends the run as
interrupted instead (`StopOnInterrupt`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _core_in_process_executor_creation,
    _core_multiprocess_executor_creation,
    multiple_process_executor_requirements,
)
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.base import Executor

if TYPE_CHECKING:
    from dagster._core.events import DagsterEvent
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan
    from dagster._utils.error import SerializableErrorInfo

LOCAL_EXECUTOR_NAME = "sync_assets_local_executor"
SINGLE_STEP_FIELD = "single_step_in_process"


INTERRUPTS = frozenset({DagsterExecutionInterruptedError.__name__, KeyboardInterrupt.__name__})


def _raised_by_interrupt(error: SerializableErrorInfo | None) -> bool:
    while error is not None:
        if error.cls_name in INTERRUPTS:
            return True
        error = error.cause or error.context
    return False


def is_retry_after_interrupt(event: DagsterEvent) -> bool:
    """A step put up for retry because it was interrupted (SIGTERM, SIGINT, Terminate)."""
    if event.event_type != dg.DagsterEventType.STEP_UP_FOR_RETRY:
        return False
    return _raised_by_interrupt(event.step_retry_data.error)


class StopOnInterrupt(Executor):
    """Dagster's in-process executor, except that an interrupted step is not run again: the
    run stops as interrupted, as under the multiprocess executor."""

    def __init__(self, in_process: Executor) -> None:
        self._in_process = in_process

    @property
    def retries(self) -> RetryMode:
        return self._in_process.retries

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        events = self._in_process.execute(plan_context, execution_plan)
        try:
            for event in events:
                yield event
                if is_retry_after_interrupt(event):
                    raise DagsterExecutionInterruptedError()
        finally:
            events.close()  # type: ignore[attr-defined]  # a generator: its cleanup runs now


class SingleStepInProcessExecutor(Executor):
    """Multiprocess for a plan of several steps, in the run's process for a plan of one."""

    def __init__(self, multiprocess: Executor, in_process: Executor) -> None:
        self._multiprocess = multiprocess
        self._in_process = in_process

    @property
    def retries(self) -> RetryMode:
        return self._multiprocess.retries

    def chosen_for(self, execution_plan: ExecutionPlan) -> Executor:
        single = len(execution_plan.step_keys_to_execute) == 1
        return self._in_process if single else self._multiprocess

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        yield from self.chosen_for(execution_plan).execute(plan_context, execution_plan)


def _multiprocess_config() -> dict[str, Any]:
    fields = dict(MULTI_PROC_CONFIG.config_type.fields)
    fields[SINGLE_STEP_FIELD] = dg.Field(
        bool,
        default_value=True,
        description="Run a plan of one step in the run's process (no step process).",
    )
    return fields


def _requirements(executor_config: dict[str, Any]) -> list[Any]:
    return multiple_process_executor_requirements() if "multiprocess" in executor_config else []


@dg.executor(
    name=LOCAL_EXECUTOR_NAME,
    config_schema=dg.Field(
        dg.Selector(
            {
                "multiprocess": dg.Field(_multiprocess_config(), is_required=False),
                "in_process": IN_PROC_CONFIG,
            }
        ),
        default_value={"multiprocess": {}},
    ),
    requirements=_requirements,
)
def local_executor(init_context: dg.InitExecutorContext) -> Executor:
    config = init_context.executor_config
    if "multiprocess" not in config:
        return StopOnInterrupt(_core_in_process_executor_creation(config["in_process"]))
    multi = dict(config["multiprocess"])
    single_step_in_process = multi.pop(SINGLE_STEP_FIELD, True)
    multiprocess = _core_multiprocess_executor_creation(multi)
    if not single_step_in_process:
        return multiprocess
    in_process = _core_in_process_executor_creation(
        {"retries": multi.get("retries", {"enabled": {}})}
    )
    return SingleStepInProcessExecutor(multiprocess, StopOnInterrupt(in_process))
