"""The five figures. Each takes the running environment and returns its numbers."""

from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.env import BenchEnv, ContainerEvents, MemorySampler
from prefect_pipelines.vocabulary import (
    CONTAINER_EXECUTION,
    CONTAINER_FLOW_RUN,
    ENTRYPOINT,
    FLOW_NAME,
    LABEL_STEPS,
    TAG_EXECUTION,
    TAG_PROJECT,
    deployment_name,
)
from tests.support.procs import wait_for

PREFECT = [__import__("sys").executable, "-m", "prefect"]
BUSYBOX_TRUE = {"runScriptConfig": {"image": "busybox", "shellScript": "true"}}
BIG_LOG_LINES = 200_000
BIG_LOG_SCRIPT = ("awk 'BEGIN{for(i=1;i<=%d;i++) printf \"%%06d the quick brown fox jumps over "
                  "the lazy dog\\n\", i}'" % BIG_LOG_LINES)
LAST_LINE = f"{BIG_LOG_LINES:06d} the quick brown fox jumps over the lazy dog"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))] if ordered else float("nan")


def _docker_run(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--network", "none", *args], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


# -- 1. trigger latency -------------------------------------------------------------------

def trigger_latency(env: BenchEnv, runs: int, buildbot: Any | None) -> dict[str, Any]:
    """Seconds from the `run` response to the step's container running (engine start event)."""
    project, pipeline = env.new_project(), "one-step"
    env.create_pipeline(project, pipeline, [{"name": "run", "steps": [BUSYBOX_TRUE]}])
    by_execution = ContainerEvents(env.docker, CONTAINER_EXECUTION)
    ours, measured = [], []
    for index in range(runs + 2):  # two warm-up runs
        called = time.time()
        execution, answered, _ = env.run(project, pipeline)
        started = wait_for(lambda: by_execution.starts.get(execution["id"]), timeout=120,
                           interval=0.01, what="the container")
        env.wait_finished(project, execution["id"])
        if index >= 2:
            ours.append(started - answered)
            measured.append((execution["id"], called, answered))
        time.sleep(0.5)
    by_execution.close()
    breakdown = [_trigger_milestones(env, by_execution, *run) for run in measured]
    stock = _stock_worker_latency(env, runs)
    result: dict[str, Any] = {"ours": ours, "stock_process_worker": stock,
                              "breakdown": breakdown}
    if buildbot is not None:
        result["buildbot"] = buildbot.trigger_latency(runs)
    return result


# Where a trigger's time goes: each milestone's time after `run` was called, from what the
# pieces record themselves (the bench's own clock around the call, Prefect's states and
# task runs, the engine's events), all on one host clock. (A task run's `created` is not
# one: Prefect's server writes the row from the run's events, after it is Running.)
MILESTONES = (
    ("number_taken", "run number taken (its claim's `created`)"),
    ("flow_run_created", "flow run created (Prefect's `created`)"),
    ("answered", "`run` answered"),
    ("pending", "a worker took it (Pending)"),
    ("flow_running", "flow run Running"),
    ("task_running", "step's task run Running"),
    ("container_created", "container created (engine)"),
    ("container_started", "container started (engine)"),
)


def _trigger_milestones(env: BenchEnv, events: ContainerEvents, execution_id: str,
                        called: float, answered: float) -> dict[str, float]:
    """One measured run's milestones, in seconds after `run` was called."""
    flow_run_id = uuid.UUID(events.labels[execution_id][CONTAINER_FLOW_RUN])

    async def read(client: Any) -> tuple[Any, list[Any], Any]:
        from prefect_pipelines.services.numbering import CLAIM_SLUG, claim_name
        from prefect_pipelines.vocabulary import tagged_run_number

        flow_run = await client.read_flow_run(flow_run_id)
        claims = await client.request("POST", "/block_documents/filter", json={
            "block_documents": {"name": {"any_": [claim_name(
                flow_run.deployment_id, tagged_run_number(flow_run.tags))]},
                "is_anonymous": {"eq_": True}},
            "block_types": {"slug": {"any_": [CLAIM_SLUG]}}})
        [claim] = claims.json()
        return flow_run, await client.read_flow_run_states(flow_run_id), claim["created"]

    flow_run, states, claimed = env.prefect(read)
    step = _task_run(env, str(flow_run_id), 0, 0)

    def first(kind: str) -> float:
        return min(state.timestamp.timestamp() for state in states if state.type.value == kind)

    at = {"number_taken": _seconds(claimed), "answered": answered,
          "flow_run_created": flow_run.created.timestamp(),
          "pending": first("PENDING"), "flow_running": first("RUNNING"),
          "task_running": step.start_time.timestamp(),
          "container_created": events.creates[execution_id],
          "container_started": events.starts[execution_id]}
    return {name: at[name] - called for name, _ in MILESTONES}


def _stock_worker_latency(env: BenchEnv, runs: int) -> list[float]:
    """The same one-step pipeline as a plain deployment on a stock process worker."""
    from prefect.client.schemas.actions import WorkPoolCreate

    pool = "bench-process"

    async def setup(client: Any) -> Any:
        try:
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except Exception:  # noqa: BLE001 - already there
            pass
        flow_id = await client.create_flow_from_name("run-pipeline")
        return await client.create_deployment(
            flow_id=flow_id, name="bench:stock", entrypoint=ENTRYPOINT, work_pool_name=pool,
            parameters={"pipeline_id": "stock", "project_id": "c-bench:p-stock", "pipeline": {
                "stages": [{"name": "run", "steps": [BUSYBOX_TRUE]}]}})

    deployment_id = env.prefect(setup)
    # Prefect's own worker with its default settings (10 s polling, a process per run).
    worker = env.start_process("stock-worker", [*PREFECT, "worker", "start", "--pool", pool,
                                                "--type", "process"])
    wait_for(lambda: "started" in worker.log_text(), timeout=90, what="the stock worker")
    latencies = []
    for index in range(runs + 1):
        async def trigger(client: Any) -> tuple[str, float]:
            flow_run = await client.create_flow_run_from_deployment(deployment_id)
            return str(flow_run.id), time.time()

        flow_run_id, answered = env.prefect(trigger)
        started = wait_for(lambda: env.events.starts.get(flow_run_id), timeout=180,
                           interval=0.02, what="the stock worker's container")
        _wait_flow_run(env, flow_run_id)
        if index >= 1:
            latencies.append(started - answered)
    worker.stop(timeout=30)
    return latencies


def _wait_flow_run(env: BenchEnv, flow_run_id: str, timeout: float = 300) -> Any:
    async def read(client: Any) -> Any:
        return await client.read_flow_run(uuid.UUID(flow_run_id))

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flow_run = env.prefect(read)
        if flow_run.state and flow_run.state.is_final():
            return flow_run
        time.sleep(0.1)
    raise TimeoutError(flow_run_id)


# -- 2. step overhead ---------------------------------------------------------------------

def step_overhead(env: BenchEnv, runs: int, buildbot: Any | None) -> dict[str, Any]:
    """A 20-stage pipeline of `true` against 20 sequential `docker run --rm busybox true`.

    The run's time is its flow run's start to end as Prefect records them (the trigger is
    figure 1); `run` response to finished is reported beside it.
    """
    project, pipeline = env.new_project(), "twenty"
    env.create_pipeline(project, pipeline,
                        [{"name": f"s{i}", "steps": [BUSYBOX_TRUE]} for i in range(20)])
    run_times, totals, bare = [], [], []
    for index in range(runs + 1):  # one warm-up run
        execution, answered, _ = env.run(project, pipeline)
        done = env.wait_finished(project, execution["id"])
        finished = time.time()
        if done["state"] != "success":
            raise RuntimeError(f"{execution['id']} {done['state']}")
        if index >= 1:
            flow_run = _wait_flow_run(env, env.flow_run_id(project, execution["id"]))
            run_times.append((flow_run.end_time - flow_run.start_time).total_seconds())
            totals.append(finished - answered)
            bare.append(sum(_docker_run(["busybox", "true"]) for _ in range(20)))
    result: dict[str, Any] = {"ours": run_times, "ours_trigger_to_finished": totals,
                              "bare_docker_20": bare}
    if buildbot is not None:
        result["buildbot"] = [buildbot.step_overhead(20)[0] for _ in range(runs)]
    return result


def _task_run(env: BenchEnv, flow_run_id: str, stage: int, step: int) -> Any:
    """A step's task run (found by its tags), with Prefect's start and end times."""
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId, TaskRunFilterTags

    from prefect_pipelines.vocabulary import step_tags

    async def read(client: Any) -> Any:
        runs = await client.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[uuid.UUID(flow_run_id)]),
            tags=TaskRunFilterTags(all_=list(step_tags(stage, step)))))
        return runs[0]

    return env.prefect(read)


def _seconds(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# -- 3. big logs --------------------------------------------------------------------------

def big_logs(env: BenchEnv, runs: int) -> dict[str, Any]:
    """200,000 numbered lines (about 10 MB) from one step."""
    project, pipeline = env.new_project(), "big-log"
    env.create_pipeline(project, pipeline, [{"name": "print", "steps": [
        {"runScriptConfig": {"image": "busybox", "shellScript": BIG_LOG_SCRIPT}}]}])
    by_execution = ContainerEvents(env.docker, "io.prefect-pipelines.execution-id")
    step_walls, visible_after, read_latencies, bare = [], [], [], []
    pids = {"worker": env.worker.pid, "facade": env.facade.pid}
    with MemorySampler(pids) as memory:
        for _ in range(runs):
            execution, _, _ = env.run(project, pipeline)
            execution_id = execution["id"]
            url = f"/v3/projects/{project}/pipelineexecutionlogs/{execution_id}-0-0"
            died = wait_for(lambda: by_execution.dies.get(execution_id), timeout=600,
                            interval=0.01, what="the step's container to end")
            while LAST_LINE not in env.api.get(url).json()["message"][-200:]:
                time.sleep(0.02)
            visible_after.append(time.time() - died)
            env.wait_finished(project, execution_id)
            task_run = _task_run(env, env.flow_run_id(project, execution_id), 0, 0)
            step_walls.append((task_run.end_time - task_run.start_time).total_seconds())
            for _ in range(5):
                started = time.perf_counter()
                response = env.api.get(url)
                read_latencies.append(time.perf_counter() - started)
                assert response.status_code == 200
            bare.append(_docker_run(["busybox", "sh", "-c", BIG_LOG_SCRIPT + " > /dev/null"]))
    by_execution.close()
    trimmed_head = env.api.get(url).json()["message"].split("\n", 1)[0]
    return {"step_wall": step_walls, "bare_container": bare, "last_line_visible_after": visible_after,
            "peak_rss_mb": memory.peak, "log_read_latency": read_latencies,
            "log_head": trimmed_head}


# -- 4. API reads -------------------------------------------------------------------------

def api_reads(env: BenchEnv, executions: int, samples: int) -> dict[str, Any]:
    """GET one execution and the first page of a pipeline's executions, with 10-step
    executions stored, beside the Prefect call that fetches the same flow runs."""
    project, pipeline = env.new_project(), "ten-steps"
    env.create_pipeline(project, pipeline, [{"name": "s", "steps": [BUSYBOX_TRUE] * 10}])
    seed_started = time.perf_counter()
    flow_run_ids = env.prefect(lambda client: _seed(client, project, pipeline, executions))
    seed_seconds = time.perf_counter() - seed_started
    one, one_prefect, page, page_prefect = [], [], [], []
    direct = httpx.Client(base_url=env.api_url, timeout=60)
    deployment_id = env.prefect(lambda client: _deployment_id(client, project, pipeline))
    for _ in range(samples):
        run = random.randint(1, executions)
        started = time.perf_counter()
        response = env.api.get(f"/v3/projects/{project}/pipelineexecutions/{pipeline}-{run}")
        one.append(time.perf_counter() - started)
        assert response.status_code == 200 and len(response.json()["stages"][0]["steps"]) == 10
        started = time.perf_counter()
        direct.get(f"/flow_runs/{flow_run_ids[run - 1]}").raise_for_status()
        one_prefect.append(time.perf_counter() - started)
        started = time.perf_counter()
        listed = env.api.get(f"/v3/projects/{project}/pipelineexecutions", params={"pipelineId": pipeline})
        page.append(time.perf_counter() - started)
        assert listed.status_code == 200 and len(listed.json()["data"]) == 50
        started = time.perf_counter()
        direct.post("/flow_runs/filter", json={
            "flow_runs": {"deployment_id": {"any_": [str(deployment_id)]}},
            "sort": "EXPECTED_START_TIME_DESC", "limit": 50}).raise_for_status()
        page_prefect.append(time.perf_counter() - started)
    parts = _list_page_parts(direct, project, pipeline, max(10, samples // 5))
    direct.close()
    return {"executions": executions, "seed_seconds": seed_seconds, "get_one": one,
            "get_one_prefect": one_prefect, "list_page": page, "list_page_prefect": page_prefect,
            "list_page_parts": parts}


def _list_page_parts(direct: httpx.Client, project: str, pipeline: str, samples: int
                     ) -> dict[str, list[float]]:
    """Where a list page's time goes: the Prefect calls the facade makes for it, timed
    directly (the pipeline's deployment, the first page of its flow runs and their count,
    all at once), and turning the 50 flow runs into Prefect's client objects (what the
    Prefect client does with them). Also the call that the runs' records of their steps
    save: the task runs of those 50 runs, 500 of them, in pages of 200 at once."""
    from prefect.client.schemas.objects import FlowRun

    name = deployment_name(project, pipeline)
    runs_filter = {"flows": {"name": {"any_": [FLOW_NAME]}},
                   "deployments": {"name": {"any_": [name]}},
                   "flow_runs": {"tags": {"all_": [f"{TAG_PROJECT}{project}", TAG_EXECUTION]}}}
    parts: dict[str, list[float]] = {"prefect_calls": [], "parse": [], "task_runs_saved": []}
    pool = ThreadPoolExecutor(4)
    for _ in range(samples):
        started = time.perf_counter()
        listed, _, _ = pool.map(lambda call: call(), [
            lambda: direct.post("/flow_runs/filter", json={
                **runs_filter, "sort": "EXPECTED_START_TIME_DESC", "limit": 50}).raise_for_status(),
            lambda: direct.post("/flow_runs/count", json=runs_filter).raise_for_status(),
            lambda: direct.get(f"/deployments/name/{FLOW_NAME}/{name}").raise_for_status()])
        parts["prefect_calls"].append(time.perf_counter() - started)
        started = time.perf_counter()
        [FlowRun.model_validate(run) for run in listed.json()]
        parts["parse"].append(time.perf_counter() - started)
        ids = [run["id"] for run in listed.json()]
        started = time.perf_counter()
        list(pool.map(lambda offset: direct.post("/task_runs/filter", json={
            "task_runs": {"flow_run_id": {"any_": ids}}, "sort": "ID_DESC", "limit": 200,
            "offset": offset}).raise_for_status(), (0, 200, 400)))
        parts["task_runs_saved"].append(time.perf_counter() - started)
    pool.shutdown()
    return parts


async def _deployment_id(client: Any, project: str, pipeline: str) -> Any:
    return (await client.read_deployment_by_name(f"run-pipeline/{project}:{pipeline}")).id


async def _seed(client: Any, project: str, pipeline: str, count: int) -> list[str]:
    """Store finished executions the way runs leave them: a Completed flow run of the
    pipeline's deployment with its tags and parameters, ten Completed task runs, and the
    record of its steps that a run puts on its flow run as it ends."""
    from prefect.client.schemas.objects import TaskRun
    from prefect.states import Completed

    from prefect_pipelines.translator.executions import encode_steps, step_records

    deployment = await client.read_deployment_by_name(f"run-pipeline/{project}:{pipeline}")
    gate = asyncio.Semaphore(12)
    ids: list[str] = [""] * count

    async def one(number: int) -> None:
        async with gate:
            flow_run = await client.create_flow_run_from_deployment(
                deployment.id, name=f"{pipeline}-{number}", state=Completed(),
                tags=[f"run:{number}", "pipeline-execution"],
                idempotency_key=f"pipeline-run:{deployment.id}:{number}")
            ids[number - 1] = str(flow_run.id)
            task_runs = []
            for step in range(10):
                response = await client._client.post("/task_runs/", json={
                    "name": f"stage-0-step-{step}", "flow_run_id": str(flow_run.id),
                    "task_key": "step", "dynamic_key": str(step), "tags": ["stage:0", f"step:{step}"],
                    "state": {"type": "COMPLETED", "name": "Completed"}})
                response.raise_for_status()
                task_runs.append(TaskRun.model_validate(response.json()))
            await client.update_flow_run_labels(flow_run.id, {
                LABEL_STEPS: encode_steps(step_records(task_runs), flow_run.run_count)})

    await asyncio.gather(*(one(number) for number in range(1, count + 1)))
    return ids


# -- 5. burst -----------------------------------------------------------------------------

def burst(env: BenchEnv, calls: int = 50, pipelines: int = 5) -> dict[str, Any]:
    """`calls` run actions at once across `pipelines` pipelines of one project."""
    project = env.new_project()
    names = [f"burst-{i}" for i in range(pipelines)]
    stages = [{"name": "work", "steps": [{"runScriptConfig": {"image": "busybox", "shellScript": "sleep 1"}}]}]
    for name in names:
        env.create_pipeline(project, name, stages)
    one_execution, answered, _ = env.run(project, names[0])
    env.wait_finished(project, one_execution["id"])
    one_run = time.time() - answered
    by_execution = ContainerEvents(env.docker, "io.prefect-pipelines.execution-id")
    running_max = _RunningSampler(env, project)
    started = time.perf_counter()
    def attempt(index: int) -> tuple[dict[str, Any], float, int] | None:
        try:
            return env.run(project, names[index % pipelines])
        except RuntimeError:  # refused: counted as not accepted
            return None

    with running_max, ThreadPoolExecutor(max_workers=calls) as pool:
        answers = [answer for answer in pool.map(attempt, range(calls)) if answer]
    executions = [execution for execution, _, _ in answers]
    deferred = sum(count for _, _, count in answers)
    finished = [env.wait_finished(project, e["id"], timeout=1200) for e in executions]
    makespan = time.perf_counter() - started
    running_max.stop()
    by_execution.close()
    stored = env.api.get(f"/v3/projects/{project}/pipelineexecutions", params={"limit": 200}).json()["data"]
    numbers: dict[str, list[int]] = {}
    for execution in stored:
        numbers.setdefault(execution["pipelineId"], []).append(execution["run"])
    quota = 2
    return {
        "calls": calls, "accepted": len(executions), "answered_503_then_retried": deferred,
        "succeeded": sum(1 for f in finished if f["state"] == "success"),
        "stored": len(stored),
        "gap_free": all(sorted(runs) == list(range(1, len(runs) + 1)) for runs in numbers.values()),
        "containers_started_twice": sum(1 for count in by_execution.start_counts.values() if count > 1),
        "max_running": running_max.peak, "quota": quota, "makespan": makespan,
        "one_run": one_run, "ideal_makespan": calls * one_run / quota,
    }


# -- 7. webhook deliveries -------------------------------------------------------------

def deliveries(env: BenchEnv, count: int = 80) -> dict[str, Any]:
    """`count` signed push deliveries at once to one pipeline (a fake GitHub's repository),
    each redelivered with its id until answered 2xx, as GitHub's Redeliver button does:
    how long the answers took, and whether every delivery got exactly one execution."""
    from tests.fakes.github import FakeGitHub
    from tests.support.webhooks import burst as deliver_burst
    from tests.support.webhooks import hooked_pipeline

    fake = FakeGitHub(env.state / "github")
    fake.start()
    try:
        hooked = hooked_pipeline(env.api, fake)
        started = time.perf_counter()
        sent = deliver_burst(env.facade_url, hooked, count)
        answered = time.perf_counter() - started
        answers = sorted(attempt.seconds for item in sent for attempt in item.attempts)
        refused = [a.status for item in sent for a in item.attempts if a.status not in (200, 201, 202)]
        ids = [f"{hooked.name}-{n}" for n in range(1, count + 1)]
        finished = [env.wait_finished(hooked.project, execution_id, timeout=1200) for execution_id in ids]
        makespan = time.perf_counter() - started
        stored = env.api.get(f"/v3/projects/{hooked.project}/pipelineexecutions",
                             params={"limit": 200}).json()["data"]
    finally:
        fake.stop()
    return {
        "deliveries": count, "accepted": sum(1 for item in sent if item.accepted is not None),
        "attempts": len(answers), "refused": len(refused),
        "longest_answer": answers[-1], "median_answer": median(answers), "p99_answer": p99(answers),
        "all_answered_in": answered, "executions": len(stored),
        "succeeded": sum(1 for f in finished if f["state"] == "success"), "makespan": makespan,
    }


class _RunningSampler:
    """The most executions of a project seen running at once (sampled every 100 ms)."""

    def __init__(self, env: BenchEnv, project: str) -> None:
        self.env, self.project, self.peak = env, project, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _RunningSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        client = httpx.Client(base_url=self.env.api_url, timeout=30)
        while not self._stop.wait(0.1):
            try:
                count = client.post("/flow_runs/count", json={"flow_runs": {
                    "tags": {"all_": [f"project:{self.project}"]},
                    "state": {"type": {"any_": ["RUNNING"]}}}}).json()
                self.peak = max(self.peak, int(count))
            except (httpx.HTTPError, ValueError):
                pass
        client.close()


# -- 6a. what one execution asks of Prefect (a counting pass) -------------------------------

def api_calls(env: BenchEnv, runs: int = 10, idle_seconds: float = 20) -> dict[str, Any]:
    """The Prefect API calls (by route) and the events one one-step execution costs.

    A counting pass: the bench's worker steps aside for a worker and a facade whose
    PREFECT_API_URL is a counting proxy (bench/counting.py), so the runs (their flow
    processes are the worker's children) and the `run` calls reach Prefect through it.
    First `idle_seconds` with nothing running measure what the pair asks of Prefect on its
    own (polls, sweeps, leases), taken off at the same rate; then `runs` executions one
    after another, triggered through the counted facade and waited for through the bench's
    own (not counted). Events: those clients sent over the proxy, and every event Prefect
    stored in the window (its own state-change events included), by name.
    """
    import datetime as dt

    from bench.counting import CountingProxy
    from bench.env import CLI
    from tests.support.procs import free_port

    with CountingProxy(env.api_url) as proxy:
        env.worker.stop(timeout=40)
        env.procs.remove(env.worker)
        counted = {"PREFECT_API_URL": proxy.url}
        worker = env._start("counted-worker", [*CLI, "worker", "--name", "counted"], counted)
        port = free_port()
        facade = env._start("counted-facade", [*CLI, "api", "--port", str(port)], counted)
        try:
            wait_for(lambda: "started" in worker.log_text(), timeout=60, what="the counted worker")
            wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200,
                     timeout=60, what="the counted facade")
            api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300,
                               headers={"Authorization": f"Bearer {env.token}"})
            project, pipeline = env.new_project(), "counted"
            env.create_pipeline(project, pipeline, [{"name": "s", "steps": [BUSYBOX_TRUE]}])

            def one_run() -> None:
                answer = api.post(f"/v3/projects/{project}/pipelines/{pipeline}", params={"action": "run"})
                answer.raise_for_status()
                finished = env.wait_finished(project, answer.json()["id"])
                assert finished["state"] == "success", finished

            one_run()  # warm-up: the first run creates what later runs find
            time.sleep(2)
            proxy.reset()
            time.sleep(idle_seconds)
            idle, _ = proxy.snapshot()
            proxy.reset()
            since, started = dt.datetime.now(dt.timezone.utc), time.monotonic()
            for _ in range(runs):
                one_run()
            calls, sent_events = proxy.snapshot()
            spent, until = time.monotonic() - started, dt.datetime.now(dt.timezone.utc)
            api.close()
        finally:
            for proc in (facade, worker):
                proc.stop(timeout=40)
                env.procs.remove(proc)
            env.worker = env.start_worker("worker")
    time.sleep(6)  # Prefect's event persister writes in batches
    stored = httpx.post(f"{env.api_url}/events/count-by/event", timeout=60, json={
        "filter": {"occurred": {"since": since.isoformat(), "until": until.isoformat()}}}).json()
    per_run = {name: (count - idle.get(name, 0) * spent / idle_seconds) / runs
               for name, count in calls.items()}
    return {"runs": runs, "seconds": spent, "idle_seconds": idle_seconds,
            "calls_per_run": dict(sorted(per_run.items(), key=lambda item: -item[1])),
            "calls_per_run_total": sum(per_run.values()),
            "idle_calls_per_second": sum(idle.values()) / idle_seconds,
            "client_events_per_run": sent_events / runs,
            "stored_events_per_run": {item["value"]: item["count"] / runs for item in stored},
            "stored_events_per_run_total": sum(item["count"] for item in stored) / runs}


# -- 6. scale-out (docs/scaling.md) --------------------------------------------------------

def scale_out(env: BenchEnv, runs: int = 40, projects: int = 10) -> dict[str, Any]:
    """Throughput of one worker, then two, on one Prefect server on PostgreSQL: `runs`
    one-step executions (`true` in busybox) spread over `projects` projects (quota 2 each),
    triggered at once; the makespan and the CPU seconds each component spent per run."""
    from bench.env import cpu_seconds, postgres_pids

    def one_round(label: str) -> dict[str, Any]:
        names = [(env.new_project(), "one") for _ in range(projects)]
        for project, name in names:
            env.create_pipeline(project, name, [{"name": "s", "steps": [BUSYBOX_TRUE]}])
        pids = {"prefect server": [env.prefect_server.pid], "postgres": postgres_pids(),
                "facade": [env.facade.pid], "workers": [proc.pid for proc in env.workers()]}
        before = {name: cpu_seconds(group) for name, group in pids.items()}
        started = time.perf_counter()
        def call(index: int) -> tuple[str, dict[str, Any]]:
            project, name = names[index % projects]
            return project, env.run(project, name)[0]

        with ThreadPoolExecutor(max_workers=20) as pool:
            executions = list(pool.map(call, range(runs)))
        finished = [env.wait_finished(project, execution["id"], timeout=900)
                    for project, execution in executions]
        makespan = time.perf_counter() - started
        spent = {name: (cpu_seconds(group) - before[name]) / runs for name, group in pids.items()}
        return {"label": label, "runs": runs, "makespan": makespan,
                "succeeded": sum(1 for f in finished if f["state"] == "success"),
                "runs_per_minute": 60 * runs / makespan, "cpu_seconds_per_run": spent}

    result = {"one_worker": one_round("one worker")}
    second = env.start_worker("worker-2")
    try:
        result["two_workers"] = one_round("two workers")
    finally:
        second.stop(timeout=40)
        env.procs.remove(second)
    return result


__all__ = ["api_reads", "big_logs", "burst", "median", "p99", "scale_out", "step_overhead",
           "trigger_latency"]
