"""Per-step CPU and memory and privileged steps through the /v3 API: the project's
defaults and its admin's `allowPrivileged`, held at save and at run time."""

from __future__ import annotations

import pytest

from tests.support.api import (
    assert_error,
    create,
    definition,
    new_project,
    run,
    script_step,
    step_log,
    wait_state,
)

pytestmark = pytest.mark.usefixtures("worker")
PRIVILEGED = {**script_step("true"), "privileged": True}


@pytest.fixture
def owner(bob_api):  # type: ignore[no-untyped-def]
    """bob (no admin) and a project he owns, which alice (an admin) can change."""
    return bob_api, new_project(bob_api)


def test_project_step_defaults_are_quantities_and_requests_stay_under_limits(owner) -> None:  # type: ignore[no-untyped-def]
    bob, project = owner
    changed = bob.put(f"/v3/projects/{project}", json={"settings": {
        "cpuRequest": "250m", "cpuLimit": "2", "memoryRequest": "64Mi", "memoryLimit": "1Gi"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["settings"] == {"cpuRequest": "250m", "cpuLimit": "2",
                                          "memoryRequest": "64Mi", "memoryLimit": "1Gi"}
    bad = bob.put(f"/v3/projects/{project}", json={"settings": {"memoryLimit": "1GB"}})
    assert "not a memory quantity" in assert_error(bad, 422, "settings.memoryLimit")["message"]
    # Against what the project already has: a limit under its request.
    under = bob.put(f"/v3/projects/{project}", json={"settings": {"memoryLimit": "32Mi"}})
    assert "more than the memory limit" in assert_error(under, 422, "settings.memoryRequest")["message"]
    assert bob.get(f"/v3/projects/{project}").json()["settings"]["memoryLimit"] == "1Gi"
    # A step's request over the project's limit is refused at save, naming the step.
    refused = bob.post(f"/v3/projects/{project}/pipelines", json=definition(
        "big", [{**script_step("true"), "cpuRequest": "4"}]))
    body = assert_error(refused, 422, "stages[0].steps[0].cpuRequest")
    assert "settings.cpuLimit" in body["message"]
    assert bob.get(f"/v3/projects/{project}/pipelines/big").status_code == 404


def test_a_projects_memory_limit_holds_its_steps(owner) -> None:  # type: ignore[no-untyped-def]
    bob, project = owner
    assert bob.put(f"/v3/projects/{project}", json={"settings": {"memoryLimit": "64Mi"}}).status_code == 200
    create(bob, project, definition("hungry", [
        script_step("echo start\ndd if=/dev/zero of=/dev/null bs=200M count=1")]))
    done = wait_state(bob, project, run(bob, project, "hungry")["id"])
    assert done["state"] == "failed"
    assert "out of memory (limit 64Mi)" in step_log(bob, project, done["id"], 0, 0)
    # Its own limit wins over the project's.
    create(bob, project, definition("roomy", [
        {**script_step("dd if=/dev/zero of=/dev/null bs=100M count=1 && echo fits"),
         "memoryLimit": "256Mi"}]))
    done = wait_state(bob, project, run(bob, project, "roomy")["id"])
    assert done["state"] == "success", step_log(bob, project, done["id"], 0, 0)


def test_privileged_steps_only_where_an_admin_allowed_them(owner, api) -> None:  # type: ignore[no-untyped-def]
    bob, project = owner
    refused = bob.post(f"/v3/projects/{project}/pipelines", json=definition("dind", [PRIVILEGED]))
    assert "allowPrivileged" in assert_error(refused, 422, "stages[0].steps[0].privileged")["message"]
    assert bob.put(f"/v3/projects/{project}",
                   json={"settings": {"allowPrivileged": True}}).status_code == 403
    assert api.put(f"/v3/projects/{project}",
                   json={"settings": {"allowPrivileged": True}}).status_code == 200
    create(bob, project, definition("dind", [PRIVILEGED]))
    # Taken back: the stored pipeline's runs are held to it as they start.
    assert api.put(f"/v3/projects/{project}",
                   json={"settings": {"allowPrivileged": False}}).status_code == 200
    done = wait_state(bob, project, run(bob, project, "dind")["id"])
    assert done["state"] == "failed"
    assert "stages[0].steps[0].privileged" in done["stateMessage"]
