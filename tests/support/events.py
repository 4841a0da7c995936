"""Reading what Prefect's event system recorded (its REST API, as the UI does)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import httpx


def events_about(api_url: str, resource_prefixes: list[str], since: float) -> list[dict[str, Any]]:
    """Events since `since` (a time.time()) about resources whose id starts with one of
    `resource_prefixes`, oldest first."""
    start = datetime.fromtimestamp(since, timezone.utc).isoformat()
    body = {"filter": {"occurred": {"since": start},
                       "any_resource": {"id_prefix": resource_prefixes}, "order": "ASC"},
            "limit": 50}  # the API's largest page
    page = httpx.post(f"{api_url}/events/filter", json=body, timeout=30).raise_for_status().json()
    events: list[dict[str, Any]] = page["events"]
    while page.get("next_page") and len(events) < 1000:
        page = httpx.get(page["next_page"], timeout=30).raise_for_status().json()
        events += page["events"]
    return events


def event_timeline(api_url: str, flow_run_id: str, since: float) -> str:
    """What Prefect's event system saw of a flow run and of automations since `since`,
    one line per event: when it occurred, how late it was received, what. For failure
    messages: a lost run that is not noticed in time shows here why."""
    try:
        events = events_about(api_url, [f"prefect.flow-run.{flow_run_id}", "prefect.automation."], since)
    except httpx.HTTPError as exc:
        return f"(events unreadable: {exc})"
    lines = []
    for event in events:
        occurred = datetime.fromisoformat(event["occurred"])
        received = datetime.fromisoformat(event.get("received") or event["occurred"])
        lines.append(f"{occurred:%H:%M:%S.%f}"[:-3] + f" +{(received - occurred).total_seconds():.1f}s "
                     f"{event['event']} {event['resource'].get('prefect.resource.id', '')}")
    return "\n".join(lines) or "(no events)"
