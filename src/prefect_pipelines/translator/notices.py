"""What a finished execution's notification says, and whether it is sent (pure).

Rancher 2.1+'s `notification`: sent when the run's state is one its `condition` names,
or, with `Changed`, when it differs from the pipeline's previous finished run of the same
branch. An aborted run and a lost one count as Failed, as Rancher counted Aborted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from prefect_pipelines.translator.spec import Notification

_CONDITION = {"success": "Success", "failed": "Failed", "aborted": "Failed"}


def condition_of(state: str) -> str | None:
    """The condition an execution's API state meets: Success, Failed, or None (a run
    that did not finish, or was skipped)."""
    return _CONDITION.get(state)


def wanted(notification: Notification, state: str, previous: str | None) -> bool:
    """Whether a run that ended in `state` notifies, `previous` being the state of the
    pipeline's previous finished run of the same branch (None: there is none; then
    `Changed` alone sends nothing, as nothing changed)."""
    condition = condition_of(state)
    if condition is None:
        return False
    if condition in notification.condition:
        return True
    return ("Changed" in notification.condition and previous is not None
            and condition_of(previous) != condition)


@dataclass(frozen=True)
class Notice:
    """One execution's notification: `subject` (an email's, a webhook's), `body` (the
    text every notifier sends) and `details`, the same as values (for a webhook's
    payload)."""

    subject: str
    body: str
    details: dict[str, str]


def compose(fields: dict[str, Any], *, public_url: str, message: str | None) -> Notice:
    """The notification of an execution from its /v3 fields (`execution_fields`): the
    pipeline, run number, state, branch or tag, commit (short) and its subject, author,
    duration, why it failed, the execution's URL at `public_url`, and `message`."""
    state = str(fields.get("state") or "")
    pipeline = str(fields.get("pipelineId") or "")
    ref = str(fields.get("ref") or "")
    branch = str(fields.get("branch") or "")
    where = (f"tag {ref.removeprefix('refs/tags/')}" if ref.startswith("refs/tags/")
             else f"branch {branch}" if branch else "")
    commit = str(fields.get("commit") or "")
    url = (f"{public_url.rstrip('/')}/v3/projects/{fields.get('projectId')}"
           f"/pipelineexecutions/{fields.get('id')}")
    duration = _duration(fields.get("started"), fields.get("ended"))
    subject = f"{pipeline} #{fields.get('run')} {state}" + (f" ({where})" if where else "")
    lines = [f"Pipeline {pipeline}, run #{fields.get('run')} ({fields.get('id')}): {state}"]
    if where:
        lines.append(f"On {where}")
    if commit:
        subject_line = str(fields.get("message") or "").strip().splitlines()
        lines.append(f"Commit {commit[:7]}" + (f": {subject_line[0]}" if subject_line else ""))
    if fields.get("author"):
        lines.append(f"By {fields['author']}")
    if duration:
        lines.append(f"Took {duration}")
    if state != "success" and fields.get("stateMessage"):
        lines.append(f"Why: {fields['stateMessage']}")
    lines.append(url)
    if message:
        lines.extend(["", message])
    details = {"pipeline": pipeline, "execution": str(fields.get("id") or ""),
               "run": str(fields.get("run") or ""), "state": state, "branch": branch, "ref": ref,
               "commit": commit, "author": str(fields.get("author") or ""),
               "duration": duration, "url": url, "message": message or ""}
    return Notice(subject=subject, body="\n".join(lines), details=details)


def _duration(started: Any, ended: Any) -> str:
    try:
        start = dt.datetime.fromisoformat(str(started).replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(str(ended).replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = max(0, round((end - start).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m {seconds}s"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"
