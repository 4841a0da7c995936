"""Webhook deliveries are never lost: recorded before they are answered, one run each.

A burst of signed deliveries, each redelivered until accepted as GitHub's Redeliver
button does, makes exactly one execution per delivery, and every answer comes inside
GitHub's 10 s. A delivery whose facade stopped before making its run is run by another,
and a live facade's are left to it; a run tried twice (a retry, two facades) is made once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import PrefectClient, SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.client.schemas.objects import FlowRun

from prefect_pipelines import vocabulary
from prefect_pipelines.services import deliveries
from prefect_pipelines.services.deployments import read_deployment
from tests.support.api import run
from tests.support.procs import wait_for
from tests.support.stack import Stack
from tests.support.webhooks import GITHUB_TIMEOUT, Hooked, burst, delivery, hooked_pipeline, send

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(600)]
BURST = 80


def flow_runs(api_url: str, hooked: Hooked) -> list[FlowRun]:
    """Every flow run of the pipeline, as Prefect has them."""
    with SyncPrefectClient(api_url) as client:
        deployment = client.read_deployment_by_name(f"run-pipeline/{hooked.ref}")
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])), limit=200)


def check_burst(facade_url: str, api_url: str, hooked: Hooked, count: int,
                finish_timeout: float) -> float:
    """Send the burst and check what it made; the longest answer, in seconds."""
    sent = burst(facade_url, hooked, count)
    attempts = [attempt for item in sent for attempt in item.attempts]
    longest = max(attempt.seconds for attempt in attempts)
    statuses = sorted({str(attempt.status) for attempt in attempts})
    print(f"\n{count} deliveries: {len(attempts)} attempts, statuses {statuses}, "
          f"longest answer {longest:.2f} s")
    assert all(item.accepted is not None for item in sent), [i.attempts for i in sent if not i.accepted]
    # GitHub's timeout: every delivery was answered within 10 s, none timed out.
    assert not [a for a in attempts if a.status == "timeout"], statuses
    assert longest < GITHUB_TIMEOUT, longest
    assert {a.status for a in attempts} <= {202, 503}, statuses

    def finished() -> list[FlowRun] | None:
        runs = flow_runs(api_url, hooked)
        done = [r for r in runs if r.state is not None and r.state.is_final()]
        return runs if len(runs) >= count and len(done) == len(runs) else None

    runs = wait_for(finished, timeout=finish_timeout, interval=1,
                    what=f"{count} executions to finish")
    by_delivery: dict[str, list[str]] = {}
    for flow_run in runs:
        by_delivery.setdefault(flow_run.parameters["trigger"]["deliveryId"], []).append(flow_run.name)
    assert set(by_delivery) == {item.delivery_id for item in sent}
    assert all(len(names) == 1 for names in by_delivery.values()), by_delivery  # exactly one each
    assert sorted(int(r.name.rsplit("-", 1)[1]) for r in runs) == list(range(1, count + 1))
    assert all(r.state.is_completed() for r in runs), [(r.name, r.state) for r in runs]  # type: ignore[union-attr]

    # Redelivered now, each names its execution and runs nothing more.
    again = burst_again(facade_url, hooked, sent[:10])
    for item, response in zip(sent[:10], again):
        assert response.status_code == 200, response.text
        assert response.json()["executionId"] == by_delivery[item.delivery_id][0]
    assert len(flow_runs(api_url, hooked)) == count
    return longest


def burst_again(facade_url: str, hooked: Hooked, sent: list[Any]) -> list[httpx.Response]:
    payload = delivery("push-new-branch.json", ref="refs/heads/main", after=hooked.commit)
    return [send(facade_url, hooked.ref, "push", payload, hooked.secret, delivery_id=item.delivery_id)
            for item in sent]


@pytest.mark.slow
def test_a_burst_on_postgresql_makes_one_run_per_delivery(prefect_api, fake_github, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A facade and a worker as processes of their own (the senders' threads must not
    share the facade's interpreter), on the session's Prefect server on PostgreSQL."""
    stack = Stack(tmp_path, prefect_api)
    try:
        stack.worker("worker")
        _, url = stack.facade("facade")
        with stack.client(url) as api:
            hooked = hooked_pipeline(api, fake_github)
        check_burst(url, prefect_api, hooked, BURST, finish_timeout=400)
    finally:
        stack.close()


def _pending(hooked: Hooked, delivery_id: str, owner: str) -> deliveries.Pending:
    """Record a delivery as the facade `owner` does before it answers, and hand it to
    nobody (as if that facade stopped right after answering)."""

    async def make() -> deliveries.Pending:
        async with get_client() as client:
            deployment = await read_deployment(client, hooked.project, hooked.name)
            outcome, item = await deliveries.record(
                client, deployment=deployment, project_id=hooked.project,
                pipeline_id=hooked.name, delivery_id=delivery_id, branch="main", owner=owner,
                trigger={"triggeredBy": "webhook", "event": "push", "commit": hooked.commit,
                         "ref": "refs/heads/main"})
            assert outcome.status == "queued" and item is not None
            return item

    return asyncio.run(make())


def _runs_by_delivery(api_url: str, hooked: Hooked) -> dict[str, str]:
    return {r.parameters["trigger"]["deliveryId"]: r.name for r in flow_runs(api_url, hooked)}


def test_a_stopped_facades_deliveries_are_taken_over_and_a_live_ones_are_not(
        api, facade, prefect_api, fake_github, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One record of a facade that holds no lease (it stopped), one of a facade whose lease
    keeps changing (alive: the test renews it), then stops changing (it died)."""
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate

    hooked = hooked_pipeline(api, fake_github)
    live = f"live-{uuid.uuid4().hex[:8]}"
    lease = f"{vocabulary.LEASE_VARIABLE_PREFIX}{live}"
    alive = threading.Event()
    alive.set()

    with SyncPrefectClient(prefect_api) as client:
        client.create_variable(VariableCreate(name=lease, value={"beat": 0},
                                              tags=[vocabulary.LEASE_VARIABLE_TAG]))

    def renew() -> None:  # what a live facade's dispatcher does, every 0.5 s
        with SyncPrefectClient(prefect_api) as client:
            beat = 0
            while alive.is_set():
                beat += 1
                client.update_variable(VariableUpdate(name=lease, value={"beat": beat}))
                time.sleep(0.5)

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    gone_id, live_id = f"d-gone-{uuid.uuid4().hex[:6]}", f"d-live-{uuid.uuid4().hex[:6]}"
    _pending(hooked, gone_id, owner=f"gone-{uuid.uuid4().hex[:8]}")
    _pending(hooked, live_id, owner=live)
    stack = Stack(tmp_path, prefect_api, delivery_sweep_seconds="2")
    try:
        stack.facade("sweeper")
        runs = wait_for(lambda: _runs_by_delivery(prefect_api, hooked), timeout=60,
                        what="the stopped facade's delivery to run")
        assert runs == {gone_id: f"{hooked.name}-1"}
        time.sleep(10)  # five sweeps leave the live facade's delivery alone
        assert renewer.is_alive() and _runs_by_delivery(prefect_api, hooked) == runs
        alive.clear()  # the live facade dies
        renewer.join(timeout=10)
        runs = wait_for(lambda: (found := _runs_by_delivery(prefect_api, hooked)) and len(found) == 2
                        and found, timeout=60, what="the dead facade's delivery to run")
        assert runs == {gone_id: f"{hooked.name}-1", live_id: f"{hooked.name}-2"}

        async def left() -> list[str]:
            async with get_client() as client:
                return [p.name for p in await deliveries.pending(client)
                        if p.delivery.pipeline_id == hooked.name
                        and p.delivery.project_id == hooked.project]

        wait_for(lambda: not asyncio.run(left()), timeout=30, what="the records to go")
    finally:
        alive.clear()
        stack.close()
        with SyncPrefectClient(prefect_api) as client:
            client.delete_variable_by_name(lease)


def test_a_run_tried_twice_or_by_two_facades_at_once_is_made_once(
        api, facade, prefect_api, fake_github) -> None:  # type: ignore[no-untyped-def]
    hooked = hooked_pipeline(api, fake_github)
    owner = f"gone-{uuid.uuid4().hex[:8]}"
    first, second = _pending(hooked, "d-twice-1", owner), _pending(hooked, "d-twice-2", owner)

    def make_run(item: deliveries.Pending) -> str:
        async def make() -> str:
            async with PrefectClient(prefect_api) as client:
                return await deliveries.make_run(client, item)

        return asyncio.run(make())

    # Two facades take the same record at once: two threads, each with its own event loop
    # and client, as two processes would.
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(make_run, [first, first]))
    assert len(set(together)) == 1, together
    # A retry after the run was made but before its record went takes no number at all.
    assert make_run(first) == together[0]
    later = make_run(second)
    names = sorted(r.name for r in flow_runs(prefect_api, hooked))
    assert names == sorted([together[0], later]), names
    number = int(later.rsplit("-", 1)[1])
    assert number == max(int(n.rsplit("-", 1)[1]) for n in names)
    assert run(api, hooked.project, hooked.name)["id"] == f"{hooked.name}-{number + 1}"


def test_one_pipelines_deliveries_run_in_the_order_they_arrived(
        api, facade, prefect_api, fake_github) -> None:  # type: ignore[no-untyped-def]
    hooked = hooked_pipeline(api, fake_github)
    ids = [f"d-order-{i}-{uuid.uuid4().hex[:6]}" for i in range(6)]
    payload = delivery("push-new-branch.json", ref="refs/heads/main", after=hooked.commit)
    for delivery_id in ids:
        answer = send(facade.url, hooked.ref, "push", payload, hooked.secret, delivery_id=delivery_id)
        assert answer.status_code == 202, answer.text
    runs = wait_for(lambda: (found := flow_runs(prefect_api, hooked)) and len(found) == 6 and found,
                    timeout=60, what="six runs")
    runs = sorted(runs, key=lambda r: int(r.name.rsplit("-", 1)[1]))
    assert [r.parameters["trigger"]["deliveryId"] for r in runs] == ids
