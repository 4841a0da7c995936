"""Executions whose worker died: noticed by Prefect, marked failed, never left `running`.

A running execution sends Prefect a flow-run heartbeat event every `heartbeat_seconds`.
A proactive automation (Prefect's own zombie detection, see
https://docs.prefect.io/v3/advanced/detect-zombie-flows) watches the runs of the
`run-pipeline` flow: when one stays silent for `lost_after_seconds` after it was claimed
(Pending), started (Running) or last beat, it moves the run to Crashed with a message that
says the worker was lost. (Claimed runs matter too: a worker that dies between claiming a
run and starting it would otherwise leave it Pending for good, Prefect issue #20485.) The API shows a
Crashed run as `failed`, with that message; its project's quota slot frees as it leaves
Running. The automation is made (or corrected) by every facade and worker at start-up.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from prefect_pipelines.flows import FLOW_NAME

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

AUTOMATION_NAME = "prefect-pipelines: worker lost"


def lost_run_message(lost_after_seconds: int) -> str:
    """The message a lost execution ends with."""
    return (f"worker lost: no sign of life from the execution for {lost_after_seconds} s "
            "(its worker stopped or its host went away)")


def lost_runs_automation(lost_after_seconds: int) -> AutomationCore:
    """The automation that fails the runs of a lost worker."""
    return AutomationCore(
        name=AUTOMATION_NAME,
        description="Marks a pipeline execution Crashed when its worker stops answering: "
        "claimed but never started, or started and then silent.",
        enabled=True,
        trigger=EventTrigger(
            # Claimed (Pending): it should start; started or alive: it should beat again.
            after={"prefect.flow-run.Pending", "prefect.flow-run.Running",
                   "prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow",
                           "prefect.resource.name": FLOW_NAME},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=lost_after_seconds),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, name="Crashed",
                                    message=lost_run_message(lost_after_seconds))],
    )


async def ensure_lost_runs_automation(client: PrefectClient, lost_after_seconds: int) -> None:
    """Create the automation, or bring an existing one in line with the settings."""
    wanted = lost_runs_automation(lost_after_seconds)
    existing = await client.read_automations_by_name(AUTOMATION_NAME)
    if not existing:
        await client.create_automation(wanted)
        return
    first, *extra = existing
    for duplicate in extra:  # two processes that started at once each made one
        await client.delete_automation(duplicate.id)
    have = AutomationCore.model_validate(first.model_dump(include=set(AutomationCore.model_fields)))
    if have.model_dump(mode="json") != wanted.model_dump(mode="json"):
        await client.update_automation(first.id, wanted)
