"""When a notification is sent and what it says (translator/notices.py), without a server."""

from __future__ import annotations

import pytest

from prefect_pipelines.translator.notices import compose, wanted
from prefect_pipelines.translator.spec import Notification

FIELDS = {"id": "app-ci-12", "projectId": "c-1:p-abcde", "pipelineId": "app-ci", "run": 12,
          "state": "failed", "branch": "main", "ref": "refs/heads/main",
          "commit": "0123456789abcdef0123456789abcdef01234567",
          "message": "Fix the {{body}} parser\n\nLong story.", "author": "alice",
          "started": "2026-12-01T10:00:00Z", "ended": "2026-12-01T10:01:23Z",
          "stateMessage": "stage 'test' failed: step test / 1: the script exited with code 2"}


def notification(*condition: str) -> Notification:
    return Notification.model_validate({"recipients": [{"notifier": "c-1:n-abcde"}],
                                        "condition": list(condition)})


@pytest.mark.parametrize(("condition", "state", "previous", "sent"), [
    (["Failed"], "failed", None, True),
    (["Failed"], "aborted", "success", True),  # aborted and lost runs count as Failed
    (["Failed"], "success", "failed", False),
    (["Success"], "success", None, True),
    (["Success"], "failed", None, False),
    (["Changed"], "failed", "success", True),
    (["Changed"], "success", "aborted", True),
    (["Changed"], "failed", "aborted", False),  # Failed both times
    (["Changed"], "success", "success", False),
    (["Changed"], "success", None, False),  # the first run changed nothing
    (["Failed", "Changed"], "success", "failed", True),
    (["Failed", "Success"], "skipped", "failed", False),  # a skipped run did not finish a build
    (["Failed", "Success", "Changed"], "running", None, False),
])
def test_conditions(condition: list[str], state: str, previous: str | None, sent: bool) -> None:
    assert wanted(notification(*condition), state, previous) is sent


def test_the_message_says_what_ran_how_it_ended_and_where_to_look() -> None:
    notice = compose(FIELDS, public_url="https://ci.example.com/", message="Page the on-call.")
    assert notice.subject == "app-ci #12 failed (branch main)"
    assert notice.body.splitlines() == [
        "Pipeline app-ci, run #12 (app-ci-12): failed",
        "On branch main",
        "Commit 0123456: Fix the {{body}} parser",
        "By alice",
        "Took 1m 23s",
        "Why: stage 'test' failed: step test / 1: the script exited with code 2",
        "https://ci.example.com/v3/projects/c-1:p-abcde/pipelineexecutions/app-ci-12",
        "",
        "Page the on-call.",
    ]
    assert notice.details["url"].endswith("/pipelineexecutions/app-ci-12")
    assert (notice.details["state"], notice.details["run"], notice.details["duration"]) == (
        "failed", "12", "1m 23s")
    tag = compose({**FIELDS, "state": "success", "ref": "refs/tags/v1.2"}, public_url="http://x",
                  message=None)
    assert tag.subject == "app-ci #12 success (tag v1.2)"
    assert not any(line.startswith("Why:") for line in tag.body.splitlines())
    assert tag.body.splitlines()[-1] == "http://x/v3/projects/c-1:p-abcde/pipelineexecutions/app-ci-12"


def test_a_notification_needs_recipients_and_conditions_of_its_own_words() -> None:
    from prefect_pipelines.translator import errors as e
    from prefect_pipelines.translator.validation import parse_pipeline

    base = {"stages": [{"name": "s", "steps": [{"runScriptConfig": {"image": "busybox", "shellScript": "true"}}]}]}
    for notification_, path in [
        ({"recipients": [], "condition": ["Failed"]}, "notification.recipients"),
        ({"recipients": [{"notifier": "n-1"}], "condition": "Failed"}, "notification.recipients[0].notifier"),
        ({"recipients": [{"notifier": "c-1:n-abcde"}], "condition": ["failed"]}, "notification.condition[0]"),
        ({"recipients": [{"notifier": "c-1:n-abcde", "recipient": "a\nb"}], "condition": "Failed"},
         "notification.recipients[0].recipient"),
    ]:
        with pytest.raises(e.PipelineSpecError) as caught:
            parse_pipeline({**base, "notification": notification_})
        assert caught.value.path == path, caught.value
