"""Buildbot 4.3 as a baseline for the CI benchmarks.

``BuildbotBaseline(workdir)`` is a context manager that

* creates ``workdir/venv`` with ``python -m venv`` and installs
  ``buildbot==4.3.0``, ``buildbot-worker==4.3.0`` and ``buildbot-www==4.3.0``
  into it, unless ``workdir/venv`` already has all three (so the first use
  pays the install, later ones do not).  buildbot-www is needed although no
  UI is used: Buildbot's web service refuses to start without its ``base``
  plugin ("could not find buildbot-www; is it installed?"), and the REST API
  (/api/v2) is served by that web service.
* lays out a fresh master (``workdir/master``, ``buildbot create-master``,
  SQLite in ``state.sqlite``) and worker (``workdir/worker``,
  ``buildbot-worker create-worker``) on every ``__enter__``, writes its own
  ``master.cfg`` with two free loopback ports (PB for the worker, HTTP for
  the REST API), starts both in the foreground (``--nodaemon``) as child
  processes, and waits until ``/api/v2/workers`` shows the worker connected;
* on ``__exit__`` sends SIGTERM to both, waits for them, and SIGKILLs what is
  left of their process groups after a timeout.

Builds are forced through the REST API: ``POST /api/v2/forceschedulers/bench``
with the JSON-RPC body ``{"jsonrpc": "2.0", "method": "force", "id": n,
"params": {"builderNames": [...], "reason": ..., "bench_label": ...}}``.  The
JSON-RPC reply carries ``[buildsetid, {builderid: buildrequestid}]`` and comes
back once the buildset and build request are in the database (before any
build has started).  Builds are then followed by polling
``GET /api/v2/builds?buildrequestid=<id>`` every 50 ms.

The figures
-----------
``trigger_latency(runs)`` -> list of seconds, one per run.  Builder
``bench-trigger`` has one ShellCommand step,
``docker run --rm --network none --label bench.buildbot=<unique> busybox true``
(the label value is a force-scheduler property, unique per run).  Each value is
``container_start - force_response`` where ``force_response`` is
``time.time()`` taken when the HTTP response of the force POST has arrived,
and ``container_start`` is ``timeNano / 1e9`` of the docker engine's
``start`` event for the container carrying that label (read from the
engine's event stream, which is subscribed before the first run).  It thus
covers: Buildbot turning the build request into a build, picking the worker,
preparing the build on the worker, sending the command over PB, the worker
spawning the docker CLI, and docker creating and starting the container.  Runs
are sequential: each waits until Buildbot reports the build complete, then
sleeps 0.5 s.

``step_overhead(steps)`` -> ``(wall, buildbot)``.  Builder ``bench-steps-<N>``
has N sequential ShellCommand steps, each
``docker run --rm --network none busybox true``.  ``wall`` is seconds from
the force response (as above) until our 50 ms poll first sees the build
``complete`` in ``/api/v2/builds`` (so it includes up to ~50 ms of polling
slack plus the HTTP round trip).  ``buildbot`` is ``complete_at - started_at``
of that build as Buildbot stores it; Buildbot keeps these timestamps as
whole seconds (integer epoch seconds in its database), so this figure has a
resolution of 1 s.  Step counts other than the ones configured at start are
added by rewriting the step-count list the master.cfg reads and reconfiguring
the master with SIGHUP (waited for before the build is forced).

Only the standard library, httpx and docker (the docker SDK, talking to the
engine at /var/run/docker.sock) are used in the calling interpreter;
Buildbot itself runs in its own venv.  Everything listens on 127.0.0.1 only;
containers run with ``--network none``.  Buildbot's usage-data reporting to
buildbot.net is switched off in master.cfg.

Run ``python bench/buildbot_baseline.py [workdir]`` to try both measurements
with small counts.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

import docker
import httpx

BUILDBOT_VERSION = "4.3.0"
PACKAGES = [
    f"buildbot=={BUILDBOT_VERSION}",
    f"buildbot-worker=={BUILDBOT_VERSION}",
    f"buildbot-www=={BUILDBOT_VERSION}",
]
DOCKER_IMAGE = "busybox:latest"
LABEL_KEY = "bench.buildbot"
TRIGGER_BUILDER = "bench-trigger"
FORCE_SCHEDULER = "bench"
WORKER_NAME = "bench-worker"
WORKER_PASSWORD = "bench-pass"
POLL_INTERVAL = 0.05

MASTER_CFG = r'''# -*- python -*-
# Written by bench/buildbot_baseline.py; rewritten on every start.
import json
import os

from buildbot.plugins import schedulers, steps, util, worker

BASEDIR = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(BASEDIR, "bench_steps.json")) as f:
    STEP_COUNTS = sorted(set(json.load(f)))

DOCKER = ["docker", "run", "--rm", "--network", "none"]
IMAGE = {image!r}

c = BuildmasterConfig = {{}}
c["title"] = "buildbot baseline"
c["buildbotURL"] = "http://127.0.0.1:{www_port}/"
c["buildbotNetUsageData"] = None
c["db"] = {{"db_url": "sqlite:///state.sqlite"}}
c["protocols"] = {{"pb": {{"port": "tcp:{pb_port}:interface=127.0.0.1"}}}}
c["www"] = {{"port": "tcp:{www_port}:interface=127.0.0.1", "plugins": {{}}}}
c["workers"] = [worker.Worker({worker_name!r}, {worker_password!r})]
c["change_source"] = []
c["services"] = []

trigger = util.BuildFactory()
trigger.addStep(steps.ShellCommand(
    name="docker",
    command=DOCKER + ["--label", util.Interpolate("{label_key}=%(prop:bench_label)s"),
                      IMAGE, "true"],
    haltOnFailure=True,
))

c["builders"] = [util.BuilderConfig(
    name={trigger_builder!r}, workernames=[{worker_name!r}], factory=trigger)]
for n in STEP_COUNTS:
    factory = util.BuildFactory()
    for i in range(n):
        factory.addStep(steps.ShellCommand(
            name=f"docker-{{i + 1}}", command=DOCKER + [IMAGE, "true"], haltOnFailure=True))
    c["builders"].append(util.BuilderConfig(
        name=f"bench-steps-{{n}}", workernames=[{worker_name!r}], factory=factory))

c["schedulers"] = [schedulers.ForceScheduler(
    name={scheduler!r},
    builderNames=[b.name for b in c["builders"]],
    codebases=[util.CodebaseParameter(codebase="", hide=True)],
    properties=[util.StringParameter(name="bench_label", default="")],
)]
'''


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: pathlib.Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"<{path}: {e}>"
    return f"--- {path} (last {lines} lines) ---\n" + "\n".join(text[-lines:])


class _DockerStartEvents:
    """Collects `start` events of containers labelled LABEL_KEY: label value -> timeNano/1e9."""

    def __init__(self) -> None:
        self._client = docker.DockerClient(base_url="unix:///var/run/docker.sock", version="1.41")
        self._stream = self._client.events(
            decode=True,
            filters={"type": "container", "event": "start", "label": LABEL_KEY},
        )
        self._starts: dict[str, float] = {}
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for ev in self._stream:
                if ev.get("Action", ev.get("status")) != "start":
                    continue
                attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                value = attrs.get(LABEL_KEY)
                if value is None or "timeNano" not in ev:
                    continue
                with self._cond:
                    self._starts[value] = ev["timeNano"] / 1e9
                    self._cond.notify_all()
        except Exception:
            pass  # stream closed

    def wait_for(self, value: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self._cond:
            while value not in self._starts:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no docker start event for {LABEL_KEY}={value} within {timeout}s")
                self._cond.wait(left)
            return self._starts[value]

    def close(self) -> None:
        try:
            self._stream.close()
        except Exception:
            pass
        self._thread.join(timeout=5)
        self._client.close()


class BuildbotBaseline:
    """Context manager: installs Buildbot into its own venv if missing, starts a master and a worker on loopback, tears both down on exit."""

    def __init__(self, workdir: pathlib.Path, python: str = sys.executable,
                 startup_timeout: float = 120.0, build_timeout: float = 600.0) -> None:
        self.workdir = pathlib.Path(workdir).resolve()
        self.python = python
        self.startup_timeout = startup_timeout
        self.build_timeout = build_timeout
        self.venv = self.workdir / "venv"
        self.master_dir = self.workdir / "master"
        self.worker_dir = self.workdir / "worker"
        self.pb_port = 0
        self.www_port = 0
        self.step_counts: set[int] = {20}
        self.timings: dict[str, float] = {}  # setup phases, seconds
        self._master: subprocess.Popen | None = None
        self._worker: subprocess.Popen | None = None
        self._http: httpx.Client | None = None
        self._rpc_id = 0

    # ------------------------------------------------------------------ setup
    def _bin(self, name: str) -> pathlib.Path:
        return self.venv / "bin" / name

    def _installed(self) -> bool:
        if not (self._bin("buildbot").exists() and self._bin("buildbot-worker").exists()):
            return False
        probe = (
            "import importlib.metadata as m, sys; "
            f"sys.exit(0 if all(m.version(p) == {BUILDBOT_VERSION!r} for p in "
            "('buildbot', 'buildbot-worker', 'buildbot-www')) else 1)"
        )
        return subprocess.run([str(self._bin("python")), "-c", probe],
                              capture_output=True).returncode == 0

    def _run(self, cmd: list[str], what: str, cwd: pathlib.Path | None = None, timeout: float = 900) -> None:
        r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{what} failed (exit {r.returncode}): {' '.join(map(str, cmd))}\n"
                               f"--- stdout ---\n{r.stdout[-4000:]}\n--- stderr ---\n{r.stderr[-4000:]}")

    def _ensure_installed(self) -> None:
        t0 = time.monotonic()
        if not self._installed():
            if not self._bin("python").exists():
                self._run([self.python, "-m", "venv", self.venv], "creating the Buildbot venv")
            self._run([self._bin("python"), "-m", "pip", "install", "--quiet",
                       "--disable-pip-version-check", *PACKAGES], "installing Buildbot")
            if not self._installed():
                raise RuntimeError(f"Buildbot {BUILDBOT_VERSION} still missing from {self.venv} after pip install")
        self.timings["install"] = time.monotonic() - t0

    def _write_master_cfg(self) -> None:
        (self.master_dir / "bench_steps.json").write_text(json.dumps(sorted(self.step_counts)))
        (self.master_dir / "master.cfg").write_text(MASTER_CFG.format(
            image=DOCKER_IMAGE, www_port=self.www_port, pb_port=self.pb_port,
            worker_name=WORKER_NAME, worker_password=WORKER_PASSWORD,
            label_key=LABEL_KEY, trigger_builder=TRIGGER_BUILDER, scheduler=FORCE_SCHEDULER))

    def _create_dirs(self) -> None:
        t0 = time.monotonic()
        for d in (self.master_dir, self.worker_dir):
            if d.exists():
                shutil.rmtree(d)
        self.pb_port = _free_port()
        self.www_port = _free_port()
        while self.www_port == self.pb_port:
            self.www_port = _free_port()
        # create-master also creates the SQLite schema (state.sqlite).
        self._run([self._bin("buildbot"), "create-master", "--quiet", "--relocatable",
                   "--db=sqlite:///state.sqlite", self.master_dir], "buildbot create-master")
        self._write_master_cfg()
        self._run([self._bin("buildbot"), "checkconfig", self.master_dir], "buildbot checkconfig")
        self._run([self._bin("buildbot-worker"), "create-worker", "--quiet", "--relocatable",
                   "--maxdelay=2", "--keepalive=60", self.worker_dir,
                   f"127.0.0.1:{self.pb_port}", WORKER_NAME, WORKER_PASSWORD],
                  "buildbot-worker create-worker")
        self.timings["create"] = time.monotonic() - t0

    def _spawn(self, cmd: list, basedir: pathlib.Path) -> subprocess.Popen:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"
        out = open(basedir / "console.log", "ab")
        try:
            return subprocess.Popen([str(c) for c in cmd], cwd=basedir, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()

    def _logs(self) -> str:
        return "\n".join(_tail(p) for p in (
            self.master_dir / "twistd.log", self.master_dir / "console.log",
            self.worker_dir / "twistd.log", self.worker_dir / "console.log"))

    def _check_alive(self, during: str) -> None:
        for name, p in (("master", self._master), ("worker", self._worker)):
            if p is not None and p.poll() is not None:
                raise RuntimeError(f"Buildbot {name} exited with {p.returncode} {during}\n{self._logs()}")

    def _get(self, path: str, **params) -> dict:
        assert self._http is not None
        r = self._http.get(f"/api/v2/{path}", params=params or None)
        r.raise_for_status()
        return r.json()

    def _wait(self, what: str, cond, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_err: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive(f"while waiting for {what}")
            try:
                if cond():
                    return
            except (httpx.HTTPError, ValueError, KeyError) as e:
                last_err = e
            time.sleep(0.1)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}"
                           f" (last error: {last_err!r})\n{self._logs()}")

    def _worker_ready_for(self, builder_names: set[str]) -> bool:
        builders = {b["name"]: b["builderid"] for b in self._get("builders")["builders"]}
        if not builder_names <= builders.keys():
            return False
        for w in self._get("workers")["workers"]:
            if w["name"] == WORKER_NAME and w["connected_to"]:
                on = {c["builderid"] for c in w["configured_on"]}
                return all(builders[n] in on for n in builder_names)
        return False

    def _builder_names(self) -> set[str]:
        return {TRIGGER_BUILDER} | {f"bench-steps-{n}" for n in self.step_counts}

    def __enter__(self) -> "BuildbotBaseline":
        t_all = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._ensure_installed()
            self._create_dirs()
            t0 = time.monotonic()
            self._master = self._spawn([self._bin("buildbot"), "start", "--nodaemon", "."], self.master_dir)
            self._http = httpx.Client(base_url=f"http://127.0.0.1:{self.www_port}", timeout=30.0)
            self._wait("the master's REST API", lambda: "masters" in self._get("masters"),
                       self.startup_timeout)
            self.timings["master_start"] = time.monotonic() - t0
            t0 = time.monotonic()
            self._worker = self._spawn([self._bin("buildbot-worker"), "start", "--nodaemon", "."],
                                       self.worker_dir)
            self._wait("the worker to connect", lambda: self._worker_ready_for(self._builder_names()),
                       self.startup_timeout)
            self.timings["worker_connect"] = time.monotonic() - t0
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        self.timings["setup_total"] = time.monotonic() - t_all
        return self

    # --------------------------------------------------------------- teardown
    @staticmethod
    def _stop(p: subprocess.Popen | None, timeout: float = 30.0) -> None:
        if p is None:
            return
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        # Whatever is left in the session we created for it (e.g. a stuck docker CLI).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def __exit__(self, *exc) -> None:
        worker, self._worker = self._worker, None
        master, self._master = self._master, None
        self._stop(worker)
        self._stop(master)
        if self._http is not None:
            self._http.close()
            self._http = None

    # ---------------------------------------------------------------- builds
    def _force(self, builder: str, label: str = "") -> tuple[int, float]:
        """Force a build; return (buildrequest id, time.time() when the HTTP response arrived)."""
        assert self._http is not None, "use BuildbotBaseline as a context manager"
        self._rpc_id += 1
        body = {"jsonrpc": "2.0", "id": self._rpc_id, "method": "force",
                "params": {"builderNames": [builder], "reason": "benchmark", "bench_label": label}}
        r = self._http.post(f"/api/v2/forceschedulers/{FORCE_SCHEDULER}", json=body)
        t = time.time()
        try:
            reply = r.json()
        except ValueError:
            reply = {}
        if r.status_code != 200 or "result" not in reply:
            raise RuntimeError(f"force of {builder} failed: HTTP {r.status_code} {r.text[:2000]}")
        _bsid, brids = reply["result"]
        (brid,) = brids.values()
        return int(brid), t

    def _wait_build(self, brid: int) -> tuple[dict, float]:
        """Poll until the build of the request is complete; return (build, time.time() when seen)."""
        deadline = time.monotonic() + self.build_timeout
        while time.monotonic() < deadline:
            builds = self._get("builds", buildrequestid=brid)["builds"]
            done = [b for b in builds if b["complete"]]
            if done:
                t = time.time()
                b = done[-1]
                if b["results"] != 0:
                    raise RuntimeError(f"build {b['buildid']} (request {brid}) ended with results={b['results']} "
                                       f"({b.get('state_string')})\n{self._logs()}")
                return b, t
            self._check_alive(f"while waiting for build request {brid}")
            time.sleep(POLL_INTERVAL)
        raise RuntimeError(f"build request {brid} not complete after {self.build_timeout}s\n{self._logs()}")

    def _reconfig(self) -> None:
        assert self._master is not None
        self._write_master_cfg()
        self._master.send_signal(signal.SIGHUP)
        self._wait("the reconfigured builders", lambda: self._worker_ready_for(self._builder_names()),
                   self.startup_timeout)

    def trigger_latency(self, runs: int = 20) -> list[float]:
        """For each run: force a build of a builder whose only step runs `docker run --rm --network none --label bench.buildbot=<unique> busybox true`
        through Buildbot's REST API, take the wall time when the force request's HTTP response arrives, and the time the container started
        (from the docker engine's event stream: event `start`, `timeNano`, matched by the label), and return the differences in seconds.
        Runs are sequential; wait for each build to finish before the next, and let the system idle ~0.5 s between runs."""
        events = _DockerStartEvents()
        out: list[float] = []
        try:
            for _ in range(runs):
                label = uuid.uuid4().hex
                brid, t_resp = self._force(TRIGGER_BUILDER, label)
                self._wait_build(brid)
                t_start = events.wait_for(label, timeout=30)
                out.append(t_start - t_resp)
                time.sleep(0.5)
        finally:
            events.close()
        return out

    def step_overhead(self, steps: int = 20) -> tuple[float, float]:
        """Force a build of a builder with `steps` sequential ShellCommand steps, each `docker run --rm --network none busybox true`.
        Return (seconds from the force response to the build's completion as Buildbot reports it, seconds the build took by Buildbot's own started_at/complete_at)."""
        if steps < 1:
            raise ValueError("steps must be >= 1")
        if steps not in self.step_counts:
            self.step_counts.add(steps)
            self._reconfig()
        brid, t_resp = self._force(f"bench-steps-{steps}")
        build, t_done = self._wait_build(brid)
        return t_done - t_resp, float(build["complete_at"] - build["started_at"])


def main(argv: list[str]) -> None:
    workdir = pathlib.Path(argv[1]) if len(argv) > 1 else pathlib.Path("/tmp/buildbot-baseline")
    t0 = time.monotonic()
    with BuildbotBaseline(workdir) as bb:
        print(f"setup {time.monotonic() - t0:.1f}s: " + ", ".join(f"{k}={v:.1f}s" for k, v in bb.timings.items()))
        lat = bb.trigger_latency(runs=10)
        print("trigger latency (s):", " ".join(f"{x:.3f}" for x in lat))
        print(f"  median {statistics.median(lat):.3f}  min {min(lat):.3f}  max {max(lat):.3f}")
        wall, own = bb.step_overhead(steps=20)
        print(f"20 steps: force response -> seen complete {wall:.2f}s; Buildbot complete_at - started_at {own:.0f}s "
              f"(~{wall / 20:.3f}s per step)")
    print(f"total {time.monotonic() - t0:.1f}s (teardown included)")


if __name__ == "__main__":
    main(sys.argv)
