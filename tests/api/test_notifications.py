"""Notifiers and notifications: /v3/notifiers made by admins, a pipeline's
`notification` sent once per finished execution through a custom webhook (a real HTTP
receiver) and email (a real SMTP server), by the facade that follows Prefect's events."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.api import (
    assert_error,
    create,
    definition,
    new_project,
    run,
    script_step,
    wait_state,
)
from tests.support.procs import wait_for
from tests.support.receivers import SmtpReceiver, WebhookReceiver
from tests.support.runs import flow_log_of
from tests.support.secret_scan import scan

pytestmark = pytest.mark.usefixtures("worker")
CLUSTER = "c-notify"


@pytest.fixture(scope="module")
def receiver():  # type: ignore[no-untyped-def]
    server = WebhookReceiver()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp():  # type: ignore[no-untyped-def]
    server = SmtpReceiver()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bob(bob_api):  # type: ignore[no-untyped-def]
    return bob_api


@pytest.fixture(scope="module")
def hook(api, receiver) -> str:  # type: ignore[no-untyped-def]
    """A webhook notifier of the cluster, made by alice (an admin)."""
    made = api.post("/v3/notifiers", json={"name": "builds hook", "clusterId": CLUSTER,
                                            "webhookConfig": {"url": receiver.url}})
    assert made.status_code == 201, made.text
    return made.json()["id"]


@pytest.fixture(scope="module")
def mail(api, smtp) -> str:  # type: ignore[no-untyped-def]
    password = f"smtp-{uuid.uuid4().hex}"
    scan.add(password, "an SMTP notifier's password")
    made = api.post("/v3/notifiers", json={"name": "team mail", "clusterId": CLUSTER, "smtpConfig": {
        "host": "127.0.0.1", "port": smtp.port, "sender": "ci@example.com", "tls": False,
        "password": password, "defaultRecipient": "team@example.com"}})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["smtpConfig"] == {"host": "127.0.0.1", "port": smtp.port, "sender": "ci@example.com",
                                  "tls": False, "defaultRecipient": "team@example.com"}
    return body["id"]


def notified(project: str, name: str, steps: list, notifier: str, condition: list[str],
             **recipient: str) -> dict:
    return definition(name, steps, notification={
        "recipients": [{"notifier": notifier, **recipient}], "condition": condition,
        "message": "see the runbook"})


def test_admins_make_notifiers_and_everyone_names_them_without_their_secrets(api, bob, hook) -> None:  # type: ignore[no-untyped-def]
    key = f"pd-{uuid.uuid4().hex}"
    scan.add(key, "a PagerDuty notifier's keys")
    refused = bob.post("/v3/notifiers", json={"name": "x", "clusterId": CLUSTER,
                                               "webhookConfig": {"url": "http://127.0.0.1:9/x"}})
    assert_error(refused, 403)
    pager = api.post("/v3/notifiers", json={"name": "on call", "clusterId": CLUSTER,
                                             "pagerdutyConfig": {"serviceKey": key, "apiKey": key}})
    assert pager.status_code == 201, pager.text
    assert pager.json()["pagerdutyConfig"] == {}
    listed = bob.get("/v3/notifiers", params={"clusterId": CLUSTER})
    assert listed.status_code == 200
    ids = {item["id"]: item for item in listed.json()["data"]}
    assert hook in ids and pager.json()["id"] in ids and key not in listed.text
    assert ids[hook]["webhookConfig"]["url"].endswith("/hook")
    # Each kind says what is wrong with it, naming the field; nothing is made.
    for body, field in [
        ({"slackConfig": {"url": "https://example.com/not-slack"}}, "slackConfig.url"),
        ({"smtpConfig": {"host": "127.0.0.1", "sender": "not an address"}}, "smtpConfig.sender"),
        ({"webhookConfig": {"url": "ftp://127.0.0.1/x"}}, "webhookConfig.url"),
        ({"pagerdutyConfig": {"serviceKey": "k"}}, "pagerdutyConfig.apiKey"),
        ({"webhookConfig": {"url": "http://127.0.0.1/x"}, "msteamsConfig": {"url": "https://x"}},
         "msteamsConfig"),
    ]:
        assert_error(api.post("/v3/notifiers", json={"name": "bad", "clusterId": CLUSTER, **body}),
                     422, field)
    assert len(api.get("/v3/notifiers", params={"clusterId": CLUSTER}).json()["data"]) == len(ids)
    # A change keeps a secret it leaves out; a delete removes it.
    changed = api.put(f"/v3/notifiers/{pager.json()['id']}",
                      json={"name": "on call 2", "pagerdutyConfig": {"apiKey": key}})
    assert changed.status_code == 200 and changed.json()["name"] == "on call 2", changed.text
    assert_error(bob.delete(f"/v3/notifiers/{pager.json()['id']}"), 403)
    assert api.delete(f"/v3/notifiers/{pager.json()['id']}").status_code == 204
    assert_error(api.get(f"/v3/notifiers/{pager.json()['id']}"), 404)


def test_a_pipeline_names_only_notifiers_of_its_cluster_that_fit(api, hook, mail) -> None:  # type: ignore[no-untyped-def]
    elsewhere = new_project(api, "c-other")
    refused = api.post(f"/v3/projects/{elsewhere}/pipelines",
                       json=notified(elsewhere, "n", [script_step("true")], hook, ["Failed"]))
    assert_error(refused, 422, "notification.recipients[0].notifier")
    project = new_project(api, CLUSTER)
    bad_address = api.post(f"/v3/projects/{project}/pipelines", json=notified(
        project, "n", [script_step("true")], mail, ["Failed"], recipient="nobody"))
    assert_error(bad_address, 422, "notification.recipients[0].recipient")
    bad_condition = api.post(f"/v3/projects/{project}/pipelines", json=notified(
        project, "n", [script_step("true")], hook, ["Broken"]))
    assert_error(bad_condition, 422, "notification.condition[0]")
    made = create(api, project, notified(project, "n", [script_step("true")], hook, "Failed"))
    assert made["notification"]["condition"] == ["Failed"]  # the shorthand, as a list


def test_failed_and_success_are_sent_once_each_as_asked(api, receiver, smtp, hook, mail) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api, CLUSTER)
    create(api, project, definition("flaky", [script_step(
        'echo run $CICD_EXECUTION_SEQUENCE; [ "$CICD_EXECUTION_SEQUENCE" != 1 ]')], notification={
        "recipients": [{"notifier": hook, "recipient": "#builds"}, {"notifier": mail}],
        "condition": ["Failed"], "message": "see the runbook"}))
    first = wait_state(api, project, run(api, project, "flaky")["id"])
    assert first["state"] == "failed"
    payload = receiver.wait_for(first["id"])
    assert payload["state"] == "failed" and payload["recipient"] == "#builds"
    assert payload["pipeline"] == "flaky" and payload["run"] == "1"
    assert payload["url"].endswith(f"/v3/projects/{project}/pipelineexecutions/{first['id']}")
    assert "flaky #1 failed" in payload["subject"] and "see the runbook" in payload["text"]
    assert "Why: stage 'stage0' failed" in payload["text"]
    letter = wait_for(lambda: smtp.about(first["id"]), timeout=30, what="the email")[0]
    assert letter["To"] == "team@example.com" and letter["From"] == "ci@example.com"
    assert letter["Subject"].startswith("flaky #1 failed")
    # A success is not asked for: nothing is sent for it.
    second = wait_state(api, project, run(api, project, "flaky")["id"])
    assert second["state"] == "success"
    wait_for(lambda: "notification sent" in flow_log_of(project, first["id"]), timeout=30,
             what="the sent notification logged on the execution")
    time.sleep(3)  # the event of the second run's end has come and gone
    assert receiver.about(second["id"]) == [] and smtp.about(second["id"]) == []
    assert len(receiver.about(first["id"])) == 1 and len(smtp.about(first["id"])) == 1


def test_changed_sends_when_the_branch_changes_state(api, receiver, hook) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api, CLUSTER)
    # Runs 1 and 2 succeed, 3 and 4 fail, 5 succeeds.
    create(api, project, notified(project, "moody", [script_step(
        'case $CICD_EXECUTION_SEQUENCE in 3|4) exit 1;; esac')], hook, ["Changed"]))
    ids = []
    for _ in range(5):
        ids.append(wait_state(api, project, run(api, project, "moody")["id"])["id"])
    receiver.wait_for(ids[4])
    receiver.wait_for(ids[2])
    time.sleep(3)
    assert [len(receiver.about(execution)) for execution in ids] == [0, 0, 1, 0, 1]
    assert receiver.about(ids[2])[0]["state"] == "failed"
    assert receiver.about(ids[4])[0]["state"] == "success"


def test_an_aborted_run_that_never_started_notifies_failed(api, receiver, hook) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api, CLUSTER)
    assert api.put(f"/v3/projects/{project}", json={"settings": {"executorQuota": 1}}).status_code == 200
    create(api, project, notified(project, "slow", [script_step("sleep 30")], hook, ["Failed"]))
    busy = run(api, project, "slow")["id"]
    wait_state(api, project, busy, ("running",))
    queued = run(api, project, "slow")["id"]
    stopped = api.post(f"/v3/projects/{project}/pipelineexecutions/{queued}", params={"action": "stop"})
    assert stopped.status_code == 200, stopped.text
    assert wait_state(api, project, queued)["state"] == "aborted"
    assert receiver.wait_for(queued)["state"] == "aborted"
    api.post(f"/v3/projects/{project}/pipelineexecutions/{busy}", params={"action": "stop"})
    receiver.wait_for(busy)


def test_a_receiver_that_is_down_fails_nothing_and_is_logged(api, receiver) -> None:  # type: ignore[no-untyped-def]
    down = WebhookReceiver()
    url = down.url
    down.stop()  # nothing listens there now
    made = api.post("/v3/notifiers", json={"name": "gone", "clusterId": CLUSTER,
                                            "webhookConfig": {"url": url}})
    assert made.status_code == 201, made.text
    failing = api.post("/v3/notifiers", json={"name": "broken", "clusterId": CLUSTER,
                                               "webhookConfig": {"url": receiver.url}})
    project = new_project(api, CLUSTER)
    create(api, project, definition("fine", [script_step("true")], notification={
        "recipients": [{"notifier": made.json()["id"]}], "condition": ["Success"]}))
    done = wait_state(api, project, run(api, project, "fine")["id"])
    assert done["state"] == "success"
    wait_for(lambda: "failed after 3 attempt(s)" in flow_log_of(project, done["id"]), timeout=60,
             what="the failed notification logged on the execution")
    assert wait_state(api, project, done["id"])["state"] == "success"
    # A receiver that answers 503 is tried again, then given up, the same way.
    receiver.status = 503
    try:
        create(api, project, definition("fine2", [script_step("true")], notification={
            "recipients": [{"notifier": failing.json()["id"]}], "condition": ["Success"]}))
        before = receiver.attempts
        done = wait_state(api, project, run(api, project, "fine2")["id"])
        wait_for(lambda: "failed after 3 attempt(s)" in flow_log_of(project, done["id"]),
                 timeout=60, what="the refused notification logged")
        assert receiver.attempts - before == 3
        assert "503" in flow_log_of(project, done["id"])
    finally:
        receiver.status = 200
