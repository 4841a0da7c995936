"""What the tests of each forge share: a cluster's app on a fake forge, its credentials,
and the deliveries each forge sends (its headers and its check)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def cluster_url(cluster: str) -> str:
    return f"/v3/clusters/{cluster}/clusterpipelines/{cluster}"


def config_field(kind: str) -> str:
    """The cluster pipeline's field for forge `kind` (`gitlabConfig`, `bitbucketCloudConfig`)."""
    from prefect_pipelines.forges import FORGES

    return FORGES[kind].config_field


def app_config(fake: Any, client_id: str, client_secret: str | None) -> dict[str, Any]:
    """A `<kind>Config` for an app of the fake forge (over http)."""
    config: dict[str, Any] = {**fake.location(fake.host), "clientId": client_id}
    if client_secret is not None:
        config["clientSecret"] = client_secret
    return config


def credential_of(client: httpx.Client, login: str) -> dict[str, Any]:
    """The caller's one credential for `login`."""
    found = [c for c in client.get("/v3/sourcecodecredentials").json()["data"] if c["loginName"] == login]
    assert len(found) == 1, found
    return found[0]


def link(api: httpx.Client, fake: Any, kind: str, cluster: str, login: str,
         app: tuple[str, str]) -> dict[str, Any]:
    """authapp of the fake forge's `app` on `cluster` with a code for `login`; the
    caller's new credential."""
    client_id, client_secret = app
    made = api.post(cluster_url(cluster), params={"action": "authapp"}, json={
        config_field(kind): app_config(fake, client_id, client_secret),
        "code": fake.new_code(client_id, login)})
    assert made.status_code == 200, made.text
    return credential_of(api, login)


def forge_delivery(kind: str, name: str, **changes: Any) -> dict[str, Any]:
    """A fixture payload of forge `kind` (tests/fixtures/<kind>/) with dotted paths changed."""
    from tests.support.webhooks import delivery

    return delivery(name, fixtures=FIXTURES / kind, **changes)


def statuses(fake: Any, full_name: str, commit: str, count: int) -> list[dict[str, Any]] | None:
    found = fake.statuses.get(f"{full_name}@{commit}", [])
    return found if len(found) >= count else None


def send_gitlab(facade_url: str, pipeline: str, event: str, payload: dict[str, Any],
                token: str | None, delivery_id: str | None = None) -> httpx.Response:
    """POST a delivery as GitLab sends it: the hook's secret itself in X-Gitlab-Token."""
    headers = {"X-Gitlab-Event": event, "X-Gitlab-Event-UUID": delivery_id or str(uuid.uuid4()),
               "Content-Type": "application/json", "User-Agent": "GitLab/17.5.0"}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return httpx.post(f"{facade_url}/hooks", params={"pipelineId": pipeline},
                      content=json.dumps(payload).encode(), headers=headers, timeout=60)


def send_signed(facade_url: str, pipeline: str, payload: dict[str, Any], secret: str | None, *,
                headers: dict[str, str], signature: str, prefix: str = "sha256=") -> httpx.Response:
    """POST a delivery with `headers`, signed as the forge signs it: `signature` holds
    `prefix` + the hex HMAC-SHA256 of the body (unsigned when `secret` is None)."""
    body = json.dumps(payload).encode()
    headers = {**headers, "Content-Type": "application/json"}
    if secret is not None:
        headers[signature] = prefix + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(f"{facade_url}/hooks", params={"pipelineId": pipeline}, content=body,
                      headers=headers, timeout=60)


def send_gitea(facade_url: str, pipeline: str, event: str, payload: dict[str, Any],
               secret: str | None, delivery_id: str | None = None) -> httpx.Response:
    """A delivery as Gitea sends it: X-Gitea-Signature, the bare hex HMAC-SHA256 of the body."""
    return send_signed(facade_url, pipeline, payload, secret, signature="X-Gitea-Signature", prefix="",
                       headers={"X-Gitea-Event": event, "X-Gitea-Delivery": delivery_id or str(uuid.uuid4())})


def send_bitbucket(facade_url: str, pipeline: str, event: str, payload: dict[str, Any],
                   secret: str | None, request_id: str | None = None, *, cloud: bool = True) -> httpx.Response:
    """A delivery as Bitbucket Cloud (or Data Center) sends it: X-Hub-Signature `sha256=<hex>`."""
    delivery = {"X-Request-UUID": request_id or str(uuid.uuid4()), "X-Hook-UUID": str(uuid.uuid4())} if cloud \
        else {"X-Request-Id": request_id or str(uuid.uuid4())}
    return send_signed(facade_url, pipeline, payload, secret, signature="X-Hub-Signature",
                       headers={"X-Event-Key": event, **delivery})
