"""Executions whose worker died: noticed by Prefect, marked failed, never left `running`.

Two proactive automations (Prefect's zombie detection) watch the runs of `run-pipeline`:
a run silent for `lost_after_seconds` after it was claimed, started or last beat becomes
Crashed (`failed` in the API), and a run still Cancelling that long after the request
becomes Cancelled (`aborted`), since Prefect lets a Cancelling run go nowhere else. Either
frees its project's quota slot. Every facade and worker makes (or corrects) both at
start-up. Why each is there: docs/history.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from prefect_pipelines.vocabulary import FLOW_NAME, LOST_CANCEL_AUTOMATION, LOST_RUN_AUTOMATION

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient



def lost_run_message(lost_after_seconds: int) -> str:
    """The message a lost execution ends with."""
    return (f"worker lost: no sign of life from the execution for {lost_after_seconds} s "
            "(its worker stopped or its host went away)")


def _silence(after: set[str], expect: set[str], seconds: int) -> EventTrigger:
    """Fires for a run of the `run-pipeline` flow that sent one of `after` and then none of
    `expect` within `seconds`."""
    return EventTrigger(
        after=after,
        expect=expect,
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": FLOW_NAME},
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=seconds),
    )


def lost_runs_automation(lost_after_seconds: int) -> AutomationCore:
    """The automation that fails the runs of a lost worker."""
    return AutomationCore(
        name=LOST_RUN_AUTOMATION,
        description="Marks a pipeline execution Crashed when its worker stops answering: "
        "claimed but never started, or started and then silent.",
        enabled=True,
        # Claimed (Pending): it should start; started or alive: it should beat again.
        trigger=_silence(after={"prefect.flow-run.Pending", "prefect.flow-run.Running",
                                "prefect.flow-run.heartbeat"},
                         expect={"prefect.flow-run.*"}, seconds=lost_after_seconds),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, name="Crashed",
                                    message=lost_run_message(lost_after_seconds))],
    )


def lost_cancels_automation(lost_after_seconds: int) -> AutomationCore:
    """The automation that ends the cancellation of a run whose worker died meanwhile."""
    return AutomationCore(
        name=LOST_CANCEL_AUTOMATION,
        description="Marks a pipeline execution Cancelled when it is still being cancelled "
        "long after the request: its worker died before the run had stopped.",
        enabled=True,
        # Only an end counts: a dying worker's last heartbeats must not restart the wait.
        trigger=_silence(after={"prefect.flow-run.Cancelling"},
                         expect={f"prefect.flow-run.{name}"
                                 for name in ("Cancelled", "Completed", "Failed", "Crashed")},
                         seconds=lost_after_seconds),
        actions=[ChangeFlowRunState(
            state=StateType.CANCELLED, name="Cancelled",
            message=f"cancelled; the run was still stopping {lost_after_seconds} s after "
            "the request (its worker was most likely lost)")],
    )


async def ensure_lost_runs_automation(client: PrefectClient, lost_after_seconds: int) -> None:
    """Create the automations, or bring existing ones in line with the settings."""
    for wanted in (lost_runs_automation(lost_after_seconds), lost_cancels_automation(lost_after_seconds)):
        await _ensure(client, wanted)


async def _ensure(client: PrefectClient, wanted: AutomationCore) -> None:
    existing = await client.read_automations_by_name(wanted.name)
    if not existing:
        await client.create_automation(wanted)
        return
    first, *extra = existing
    for duplicate in extra:  # two processes that started at once each made one
        await client.delete_automation(duplicate.id)
    have = AutomationCore.model_validate(first.model_dump(include=set(AutomationCore.model_fields)))
    if have.model_dump(mode="json") != wanted.model_dump(mode="json"):
        await client.update_automation(first.id, wanted)
