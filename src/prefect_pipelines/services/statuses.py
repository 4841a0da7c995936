"""Commit statuses: a webhook run's state reported on its commit, through its forge.

Called from the flow's thread. The credential's token is read (and refreshed if it
expires) at each report, so a run that outlasts its token still reports. A failure to
report is logged and never fails the run.
"""

from __future__ import annotations

import logging

from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_pipelines.errors import ApiError
from prefect_pipelines.services import sourcecode
from prefect_pipelines.services.client import pipelines_client
from prefect_pipelines.translator import RunPlan

_log = logging.getLogger(__name__)


class CommitStatus:
    """Reports an execution's state on its commit (webhook runs of a forge's repository)."""

    def __init__(self, plan: RunPlan, public_url: str) -> None:
        self.plan = plan
        source = plan.config.source
        self.credential_id = ""
        if plan.trigger.triggered_by != "webhook" or not plan.trigger.commit or source is None:
            return
        self.credential_id = source.source_code_credential_id or ""
        self.url = source.url
        identity = plan.identity
        self.target_url = (f"{public_url.rstrip('/')}/v3/projects/{identity.project_id}"
                           f"/pipelineexecutions/{identity.execution_id}")
        self.context = f"prefect-pipelines/{identity.pipeline_id}"

    @property
    def enabled(self) -> bool:
        return bool(self.credential_id)

    def report(self, state: str, description: str) -> None:
        """Set the commit's status: pending, success, failure or error."""
        if not self.enabled:
            return
        try:
            record, token = run_coro_as_sync(self._token())
            forge = record.forge
            repo = forge.repo_name(self.url)
            if repo is None:
                self.credential_id = ""  # not a repository of the credential's forge
                return
            forge.set_status(token, repo, self.plan.trigger.commit, state=state,
                             target_url=self.target_url, description=description,
                             context=self.context)
        except ApiError as exc:
            _log.warning("could not set the commit status %s: %s", state, exc.message)
        except Exception as exc:  # noqa: BLE001 - the forge being down must not fail a build
            _log.warning("could not set the commit status %s: %s", state, type(exc).__name__)

    async def _token(self) -> tuple[sourcecode.CredentialRecord, str]:
        async with pipelines_client() as client:
            return await sourcecode.usable_token(client, self.credential_id)
