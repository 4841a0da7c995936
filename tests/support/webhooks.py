"""Webhook deliveries as GitHub sends them, and a pipeline hooked to a fake GitHub repository."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"
GITHUB_TIMEOUT = 10.0  # GitHub gives up on a delivery that is not answered in 10 s


def delivery(name: str, *, fixtures: Path = FIXTURES, **changes: Any) -> dict[str, Any]:
    """A fixture payload with dotted paths changed, e.g. `**{"pull_request.head.sha": x}`
    (a number in a path is a list index: `**{"commits.-1.id": x}`)."""
    payload = json.loads((fixtures / name).read_text())
    for path, value in changes.items():
        target = payload
        *parents, key = path.split(".")
        for parent in parents:
            target = target[int(parent)] if isinstance(target, list) else target[parent]
        if isinstance(target, list):
            target[int(key)] = value
        else:
            target[key] = value
    return payload


def send(facade_url: str, pipeline: str, event: str, payload: dict[str, Any], secret: str | None,
         delivery_id: str | None = None, timeout: float = 60) -> httpx.Response:
    """POST a delivery, signed with `secret` (unsigned when None)."""
    body = json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
               "Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(f"{facade_url}/hooks", params={"pipelineId": pipeline}, content=body,
                      headers=headers, timeout=timeout)


@dataclass
class Hooked:
    """A pipeline with its webhook on, on a repository of the fake GitHub."""

    project: str
    name: str
    secret: str
    commit: str

    @property
    def ref(self) -> str:
        return f"{self.project}:{self.name}"


def hooked_pipeline(api: httpx.Client, fake: Any, *, stages: list[dict[str, Any]] | None = None,
                    creator: httpx.Client | None = None) -> Hooked:
    """A new cluster app (set up by `api`, an admin), a GitHub user and repository on
    `fake`; a pipeline of that user that clones the repository (and runs `stages` after
    it) on every push to main. The pipeline's creator is `api`'s user, or `creator`'s,
    who then links their own GitHub account (authuser) and owns the project."""
    cluster = f"c-wh{uuid.uuid4().hex[:6]}"
    client_id, client_secret = fake.add_app()
    user = fake.add_user(f"wh-{cluster}")
    repo = fake.add_repo(user.login, "hooked", branches={"main": {"hello.txt": "hello\n"}})
    admin_login = user.login if creator is None else fake.add_user(f"wh-admin-{cluster}").login
    made = api.post(f"/v3/clusters/{cluster}/clusterpipelines/{cluster}", params={"action": "authapp"},
                    json={"githubConfig": {"host": fake.host, "tls": False, "clientId": client_id,
                                           "clientSecret": client_secret},
                          "code": fake.new_code(client_id, admin_login)})
    assert made.status_code == 200, made.text
    owner = api if creator is None else creator
    if creator is not None:
        linked = creator.post(f"/v3/clusters/{cluster}/clusterpipelines/{cluster}",
                              params={"action": "authuser"}, json={"code": fake.new_code(client_id, user.login)})
        assert linked.status_code == 200, linked.text
    credential = next(c for c in owner.get("/v3/sourcecodecredentials").json()["data"]
                      if c["loginName"] == user.login)
    made = owner.post("/v3/projects", json={"clusterId": cluster, "name": "hooked"})
    assert made.status_code == 201, made.text
    project, name = made.json()["id"], "hooked"
    body = {"name": name, "triggerWebhook": True, "stages": [
        {"name": "clone", "steps": [{"sourceCodeConfig": {
            "url": repo["clone_url"], "branch": "main", "sourceCodeCredentialId": credential["id"]}}]},
        *(stages or [])]}
    created = owner.post(f"/v3/projects/{project}/pipelines", json=body)
    assert created.status_code == 201, created.text
    hook = next(h for h in fake.hooks[repo["full_name"]].values()
                if h["config"]["url"].endswith(f"pipelineId={project}:{name}"))
    return Hooked(project, name, hook["config"]["secret"], repo["commits"]["main"])


@dataclass
class Attempt:
    status: int | str  # an HTTP status, or "timeout"
    seconds: float


@dataclass
class Delivered:
    """Every attempt to deliver one delivery, as GitHub's Redeliver button makes them."""

    delivery_id: str
    attempts: list[Attempt] = field(default_factory=list)
    accepted: httpx.Response | None = None  # the 2xx answer, once there is one


def deliver_until_accepted(facade_url: str, hooked: Hooked, delivery_id: str,
                           tries: int = 30) -> Delivered:
    """Send a push of main with GitHub's 10 s timeout; redeliver (same id) what is not
    answered 2xx, waiting a second (or Retry-After) in between."""
    payload = delivery("push-new-branch.json", ref="refs/heads/main", after=hooked.commit,
                       **{"head_commit.message": f"delivery {delivery_id}"})
    done = Delivered(delivery_id)
    for _ in range(tries):
        started = time.monotonic()
        try:
            response = send(facade_url, hooked.ref, "push", payload, hooked.secret,
                            delivery_id=delivery_id, timeout=GITHUB_TIMEOUT)
        except httpx.TimeoutException:
            done.attempts.append(Attempt("timeout", time.monotonic() - started))
            continue
        done.attempts.append(Attempt(response.status_code, time.monotonic() - started))
        if response.status_code in (200, 201, 202):
            done.accepted = response
            return done
        time.sleep(float(response.headers.get("Retry-After", "1")))
    return done


def burst(facade_url: str, hooked: Hooked, count: int) -> list[Delivered]:
    """`count` deliveries at once, each with its own id, each redelivered until accepted."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda delivery_id: deliver_until_accepted(facade_url, hooked, delivery_id), ids))
