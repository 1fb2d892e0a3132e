"""Slots of the `mysql` pool for a batch step's extra workers.

The `mysql` pool means "at most N tables read from MySQL at once, over all runs". The executor
claims one slot for a step before starting it (the op's `pool`); a batch step that syncs
several tables at once claims one more slot per extra worker here, through Dagster's own
claim bookkeeping (`InstanceConcurrencyContext`: the pool's default limit, its queue, its
back-off), under a name of its own per worker (`<step key>[worker 2]`). A claim never blocks:
a worker without a slot simply is not started, and the claim is tried again as tables finish.
Extra workers queue behind steps that wait for their first slot (priority -1).

Slots are freed when the step ends (also on failure). A step process killed outright leaves
its extra slots to Dagster's own clean-up of finished runs (`run_monitoring:
free_slots_after_run_end_seconds`), as it leaves the executor's slot of a killed run.
"""

from __future__ import annotations

from types import TracebackType

import dagster as dg
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

EXTRA_WORKER_PRIORITY = -1


class PoolSlots:
    """Extra slots of `pool` for the current step, claimed one at a time without waiting."""

    def __init__(self, context: dg.AssetExecutionContext, pool: str) -> None:
        self._pool = pool
        self._step_key = context.op_execution_context.get_step_execution_context().step.key
        self._concurrency = InstanceConcurrencyContext(context.instance, context.run)
        self._held: list[str] = []
        self._next = 2  # worker 1 runs on the step's own slot

    def __enter__(self) -> PoolSlots:
        self._concurrency.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        while self._held:
            self.release()
        self._concurrency.__exit__(exc_type, exc, traceback)  # drops claims still queued

    @property
    def held(self) -> int:
        return len(self._held)

    def try_claim(self) -> bool:
        """One more slot now, or False (the claim stays queued; asked again later is cheap:
        Dagster's context only asks the storage again after its back-off)."""
        name = f"{self._step_key}[worker {self._next}]"
        if not self._concurrency.claim(self._pool, name, EXTRA_WORKER_PRIORITY):
            return False
        self._held.append(name)
        self._next += 1
        return True

    def release(self) -> None:
        """Give the most recently claimed extra slot back to the pool."""
        self._concurrency.free_step(self._held.pop())
