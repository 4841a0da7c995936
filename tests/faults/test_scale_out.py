"""Scale-out on PostgreSQL: two facades and two workers share one Prefect server; a worker
that dies (SIGKILL, as when its host goes away) loses only the runs it was executing: they
end `failed` with a message saying the worker was lost (once the silence of
LOST_AFTER_SECONDS has passed; the wait is generous, Prefect's triggers lag on a busy
machine), their containers are removed, and the other worker carries on with everything else."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import FINISHED, create, definition, execution, run, script_step, wait_state, new_project
from tests.support.docker_engine import containers_of
from tests.support.events import event_timeline
from tests.support.procs import wait_for
from tests.support.receivers import WebhookReceiver
from tests.support.stack import Stack, flow_runs_of, kill

pytestmark = pytest.mark.timeout(480)

SHORT_RUNS = 20


def _running_container(docker_client: Any, execution_id: str) -> Any:
    found = docker_client.containers.list(
        filters={"label": f"io.prefect-pipelines.execution-id={execution_id}"})
    return found[0] if found else None


def _worker_of(flow_run: Any) -> str:
    """`host:pid` of the worker that executed a flow run (its infrastructure id)."""
    return (flow_run.infrastructure_pid or "").rsplit(":", 1)[0]


def test_two_workers_share_runs_and_a_lost_worker_loses_only_its_own(
        prefect_api: str, docker_client: Any, tmp_path: Path) -> None:
    stack = Stack(tmp_path, prefect_api, executor_quota="0", notify_sweep_seconds="3")
    receiver = WebhookReceiver()
    try:
        first = stack.worker("worker-1", "--limit", "4")
        _, url_a = stack.facade("facade-1")
        _, url_b = stack.facade("facade-2")
        a, b = stack.client(url_a), stack.client(url_b)
        project = new_project(a, "c-scale")
        long = f"long{uuid.uuid4().hex[:6]}"
        # The first run of `long` outlives its worker; later runs finish at once. Its
        # failures are told to a webhook: the lost run's is sent once, by one facade,
        # though no worker saw the run end.
        notifier = a.post("/v3/notifiers", json={"name": "scale", "clusterId": "c-scale",
                                                  "webhookConfig": {"url": receiver.url}})
        assert notifier.status_code == 201, notifier.text
        create(a, project, definition(long, [script_step(
            'if [ "$CICD_EXECUTION_SEQUENCE" = 1 ]; then sleep 600; fi; echo finished')],
            notification={"recipients": [{"notifier": notifier.json()["id"]}],
                          "condition": ["Failed"]}))
        create(b, project, definition("short", [script_step("sleep 2; echo ok")]))
        run(a, project, long)
        doomed = wait_for(lambda: _running_container(docker_client, f"{long}-1"), timeout=60,
                          what="the long step's container")
        doomed_run = doomed.labels["io.prefect-pipelines.flow-run-id"]
        stack.worker("worker-2", "--limit", "4")

        # Twenty runs through both facades, while both workers are up.
        for index in range(SHORT_RUNS):
            run(a if index % 2 else b, project, "short")
        wait_for(lambda: len({_worker_of(r) for r in flow_runs_of(project)
                              if r.name.startswith("short-") and r.state and r.state.is_completed()}) == 2,
                 timeout=120, what="runs finished by both workers")

        # worker-1 dies with the long run (and maybe some short ones) in hand.
        kill(first)
        killed_wall = time.time()

        try:
            lost = wait_state(a, project, f"{long}-1", timeout=180)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; killed at {time.strftime('%H:%M:%S', time.gmtime(killed_wall))}, "
                                 "what Prefect saw:\n"
                                 + event_timeline(prefect_api, doomed_run, killed_wall - 90)) from None
        assert lost["state"] == "failed", lost
        assert "worker lost" in lost["stateMessage"], lost
        assert lost["stages"][0]["steps"][0]["state"] == "failed"
        told = receiver.wait_for(f"{long}-1", timeout=90)
        assert told["state"] == "failed" and "worker lost" in told["text"], told
        # Its container goes too (the surviving worker removes what lost runs leave).
        wait_for(lambda: not containers_of(docker_client, doomed_run), timeout=60,
                 what="the lost run's container to be removed")

        # Everything else finishes; only runs in the dead worker's hands (at most its
        # --limit of 4, the long one among them) failed, and they say why.
        results = {f"short-{n}": wait_state(b, project, f"short-{n}", timeout=180)
                   for n in range(1, SHORT_RUNS + 1)}
        failed = {name: result for name, result in results.items() if result["state"] != "success"}
        assert all(r["state"] == "failed" and "worker lost" in r["stateMessage"] for r in failed.values()), failed
        assert len(failed) <= 3, failed
        assert [r for r in results.values() if r["state"] not in FINISHED] == []
        by_worker = {_worker_of(r) for r in flow_runs_of(project)
                     if r.name.startswith("short-") and r.state and r.state.is_completed()}
        assert len(by_worker) == 2, by_worker

        # The pipeline whose run was lost runs again, on the worker that is left.
        again = run(b, project, long)
        done = wait_state(a, project, again["id"], timeout=90)
        assert done["state"] == "success", done
        assert execution(b, project, again["id"])["run"] == 2
        # Both facades follow the same events and sweep the same runs: one notice only,
        # and none for the run that succeeded.
        time.sleep(5)
        assert len(receiver.about(f"{long}-1")) == 1 and receiver.about(again["id"]) == []
    finally:
        stack.close()
        receiver.stop()
