"""`schemathesis run` against the live facade: every operation, generated requests (valid
and invalid) with a valid token; no answer may be a 5xx or break the OpenAPI schema
(status codes, content types and bodies as documented)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CHECKS = ("not_a_server_error,response_schema_conformance,status_code_conformance,"
          "content_type_conformance")
BUDGET_SECONDS = 180  # fuzzing repeats until the budget is spent


@pytest.mark.slow
@pytest.mark.timeout(BUDGET_SECONDS + 180)
def test_schemathesis_finds_no_5xx_and_no_schema_break(facade: Any, tokens: dict[str, str],
                                                       worker: Any, tmp_path: Path) -> None:
    tool = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(tool), "run", f"{facade.url}/openapi.json", "--checks", CHECKS,
         "--max-examples", "200", "--max-time", str(BUDGET_SECONDS), "--workers", "1",
         "--seed", "20261129", "--request-timeout", "60",
         "--header", f"Authorization: Bearer {tokens['alice']}",
         "--report", "junit", "--report-dir", str(tmp_path), "--output-truncate", "true"],
        capture_output=True, text=True, timeout=BUDGET_SECONDS + 150, cwd=tmp_path)
    output = (result.stdout + result.stderr).replace(tokens["alice"], "<token>")
    assert result.returncode == 0, output[-12000:]
    assert "operations" in output.lower() or "passed" in output.lower(), output[-3000:]
