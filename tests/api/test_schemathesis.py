"""`schemathesis run` against the live facade with every check and every phase (examples,
coverage, fuzzing, stateful along the OpenAPI links): no answer may be a 5xx or break the
OpenAPI document, a request the document allows must be accepted, one it refuses must be
refused, a deleted resource must be gone, and so on.

The one check switched off anywhere is `positive_data_acceptance` ("a request the schema
allows is accepted"), and only on the operations below, each for a rule that JSON Schema
cannot state: they answer a schema-valid request with a 422 that names what is wrong.
Every other check runs on them, and every check runs on every other operation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BUDGET_SECONDS = 180  # fuzzing and stateful testing repeat until the budget is spent

_ACTIONS = ("Its input depends on `?action=` (Norman's actions share one URL), which an "
            "OpenAPI body cannot depend on: `run` takes RunInput, the others no body.")
_NAMED = "A name (or login) the project already has is NotUnique, a 422 as in Norman: state, not shape."
_DEFINITION = ("A pipeline definition's rules across fields and stored data: projectId is "
               "the path's, the clone step comes first, envFrom names the project's secrets, "
               "a notification names the cluster's notifiers, a credential is the caller's.")
_RENAME = "`name`, when given, must be the path's name (a rename is refused)."
# operation -> why a schema-valid request may still be refused (422).
UNCHECKED_ACCEPTANCE = {
    "POST /v3/projects/{project_id}/pipelines": _DEFINITION + " " + _NAMED,
    "PUT /v3/projects/{project_id}/pipelines/{pipeline_id}": _DEFINITION,
    "PUT /v3/projects/{project_id}/pipelines/{pipeline_id}/yaml": "The body is a pipeline "
    "file: " + _DEFINITION,
    "POST /v3/projects/{project_id}/pipelines/{pipeline_id}": _ACTIONS,
    "POST /v3/projects/{project_id}/pipelineexecutions/{execution_id}": _ACTIONS,
    "POST /v3/clusters/{cluster_id}/clusterpipelines/{pipeline_id}": _ACTIONS,
    "POST /v3/sourcecodecredentials/{credential_id}": _ACTIONS,
    "POST /v3/projects/{project_id}/secrets": _NAMED,
    "POST /v3/projects/{project_id}/dockercredentials": _NAMED + " So is a registry another "
    "of the project's credentials logs in to.",
    "PUT /v3/projects/{project_id}/secrets/{name}": _RENAME,
    "PUT /v3/projects/{project_id}/dockercredentials/{name}": _RENAME + " A registry another "
    "of the project's credentials logs in to is NotUnique.",
    "POST /v3/projectroletemplatebindings": "A user holds one role in a project: a second "
    "binding is NotUnique (state).",
    "POST /v3/clusters/{cluster_id}/clusterpipelines": "clusterId, when given, must be the "
    "path's; a cluster's settings are made once (NotUnique).",
    "PUT /v3/clusters/{cluster_id}/clusterpipelines/{pipeline_id}": "clusterId, when given, "
    "must be the path's.",
    "POST /v3/projects": "CPU and memory settings have a least and a most (1m CPU, 6Mi of "
    "memory) and a request is at most its limit: arithmetic on a quantity's number and unit.",
    "PUT /v3/projects/{project_id}": "As POST /v3/projects, and a change is checked against "
    "the settings stored.",
    "POST /v3/notifiers": "Exactly one of the configs, with the fields its kind needs; a Slack "
    "or Teams URL must be one Apprise recognises as that service's webhook.",
    "PUT /v3/notifiers/{notifier_id}": "As POST /v3/notifiers, and the kind cannot change.",
}


def _config(path: Path) -> Path:
    """A schemathesis.toml: every check on (what `--checks all` would say, but an option
    given on the command line would win over the file's operations), and
    positive_data_acceptance off where listed."""
    lines = ["checks.enabled = true", ""]
    for operation, reason in UNCHECKED_ACCEPTANCE.items():
        lines += [f"# {reason}", "[[operations]]", f"include-name = {json.dumps(operation)}",
                  "checks.positive_data_acceptance.enabled = false", ""]
    path.write_text("\n".join(lines))
    return path


def test_every_exclusion_names_an_operation_of_the_document(facade: Any) -> None:
    """An exclusion left behind by a renamed route would switch off nothing and hide that."""
    import httpx

    document = httpx.get(f"{facade.url}/openapi.json", timeout=30).json()
    operations = {f"{method.upper()} {path}" for path, item in document["paths"].items()
                  for method in item}
    assert set(UNCHECKED_ACCEPTANCE) <= operations, set(UNCHECKED_ACCEPTANCE) - operations
    links = [link for item in document["paths"].values() for operation in item.values()
             for response in operation["responses"].values() for link in response.get("links", {})]
    assert len(links) >= 40, "the create operations lost their links"


@pytest.mark.slow
@pytest.mark.timeout(BUDGET_SECONDS + 240)
def test_schemathesis_every_check_every_phase(facade: Any, tokens: dict[str, str], worker: Any,
                                              tmp_path: Path) -> None:
    tool = Path(sys.executable).parent / "schemathesis"
    config = _config(tmp_path / "schemathesis.toml")
    result = subprocess.run(
        [str(tool), "--config-file", str(config), "run", f"{facade.url}/openapi.json",
         "--phases", "examples,coverage,fuzzing,stateful",
         "--max-examples", "100", "--max-time", str(BUDGET_SECONDS), "--workers", "1",
         "--seed", os.environ.get("SCHEMATHESIS_SEED", "20261202"), "--request-timeout", "60", "--continue-on-failure",
         "--header", f"Authorization: Bearer {tokens['alice']}",
         "--report", "junit", "--report-dir", str(tmp_path), "--output-truncate", "true"],
        capture_output=True, text=True, timeout=BUDGET_SECONDS + 210, cwd=tmp_path)
    output = (result.stdout + result.stderr).replace(tokens["alice"], "<token>")
    print(output[-8000:])  # what it reached, with -s or on failure
    assert result.returncode == 0, output[-15000:]
    assert "Stateful" in output and "Coverage" in output, output[-3000:]
