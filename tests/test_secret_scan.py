"""The last test of the suite: no secret the suite made shows in any answer or log.

Secrets: GitHub client secrets and access tokens, webhook tokens, registry passwords,
clone tokens, API tokens (registered by the fakes and fixtures as they make them). Looked
for in: every response body the facade sent, every Prefect flow run's parameters, every
Prefect log record (step output included), and the worker's own log.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.sorting import LogSort

from tests.support.secret_scan import scan


async def _prefect_texts() -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    async with get_client() as client:
        offset = 0
        while True:
            runs = await client.read_flow_runs(limit=200, offset=offset)
            texts += [(f"parameters of flow run {run.name}", json.dumps(run.parameters))
                      for run in runs]
            if len(runs) < 200:
                break
            offset += 200
        offset = 0
        while True:
            logs = await client.read_logs(limit=200, offset=offset, sort=LogSort.TIMESTAMP_ASC)
            texts += [(f"log record {log.id} ({log.name})", log.message) for log in logs]
            if len(logs) < 200:
                break
            offset += 200
    return texts


@pytest.mark.last
def test_no_secret_in_any_answer_or_log(prefect_api: str, worker: Any) -> None:
    if not scan.secrets or not scan.responses:
        pytest.skip("run with the whole suite: the secrets come from the other tests")
    probe = next(iter(scan.secrets))
    assert scan.find([("a probe", f"...{probe}...")])  # the scanner does find a secret
    texts = [(f"response to {path}", body.decode("utf-8", errors="replace"))
             for path, body in scan.responses]
    texts += asyncio.run(_prefect_texts())
    texts.append(("the worker's log", worker.log_text()))
    found = scan.find(texts)
    assert found == [], found
    assert len(scan.secrets) >= 5 and len(texts) > 100
