"""The credentials of a run's steps: the clone token, `envFrom` secrets, registry logins.

A project's run reads its own project's secrets and docker credentials (services/); a run
outside any project (`exec`, on an operator's machine) reads Prefect's Secret and
prefect-docker DockerRegistryCredentials blocks. Every value read is masked in the logs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from prefect.blocks.system import Secret
from prefect.exceptions import ObjectNotFound
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_pipelines.errors import InvalidInputError, NotFoundError, UpstreamError
from prefect_pipelines.flows.executors.base import ExecutorError
from prefect_pipelines.flows.output import SecretMasker
from prefect_pipelines.services import sourcecode
from prefect_pipelines.services.client import pipelines_client
from prefect_pipelines.services.dockercredentials import (
    DOCKER_HUB,
    operator_logins,
    private_registries,
    registry_host,
    registry_logins,
)
from prefect_pipelines.services.secrets import resolve, secret_values
from prefect_pipelines.translator.spec import EnvFromSecret


def secret_env(secrets: Sequence[EnvFromSecret], masker: SecretMasker,
               project_id: str = "") -> dict[str, str]:
    """The `envFrom` variables of a step; every value is masked in logs from then on.

    A run of a project's pipeline reads the secrets of that project only
    (services/secrets.py); a run outside any project (`exec`, on an operator's machine)
    reads Prefect Secret blocks.

    Raises:
        ExecutorError: a secret does not exist, or lacks the key asked for.
    """
    if project_id:
        values = _project_env(secrets, project_id)
    else:
        values = _prefect_secret_env(secrets)
    for text in values.values():
        masker.add(text)
    return values


def _project_env(secrets: Sequence[EnvFromSecret], project_id: str) -> dict[str, str]:
    async def read() -> dict[str, dict[str, str] | None]:
        found: dict[str, dict[str, str] | None] = {}
        async with pipelines_client() as client:
            for item in secrets:
                if item.source_name not in found:
                    try:
                        found[item.source_name] = await secret_values(client, project_id, item.source_name)
                    except NotFoundError:
                        found[item.source_name] = None
        return found

    stored = run_coro_as_sync(read()) if secrets else {}
    env: dict[str, str] = {}
    for item in secrets:
        values = stored.get(item.source_name)
        if values is None:
            raise ExecutorError(f"project {project_id} has no secret {item.source_name!r}")
        try:
            env[item.target_key] = resolve(item.source_name, item.source_key, values)
        except KeyError as exc:
            raise ExecutorError(str(exc.args[0])) from None
    return env


def _prefect_secret_env(secrets: Sequence[EnvFromSecret]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in secrets:
        try:
            value = Secret.load(item.source_name).get()
        except (ValueError, ObjectNotFound):
            raise ExecutorError(f"secret {item.source_name!r} does not exist") from None
        if item.source_key is not None:
            if not isinstance(value, dict) or item.source_key not in value:
                raise ExecutorError(f"secret {item.source_name!r} has no key {item.source_key!r}")
            value = value[item.source_key]
        env[item.target_key] = value if isinstance(value, str) else json.dumps(value)
    return env


def load_clone_auth(credential_id: str | None) -> tuple[str, str] | None:
    """(token, Authorization header) git clones with for a source code credential (its
    token refreshed first if it expires), or None when none is named.

    Raises:
        ExecutorError: the credential does not exist, or needs a new link.
    """
    if not credential_id:
        return None

    async def read() -> tuple[str, str]:
        async with pipelines_client() as client:
            return await sourcecode.clone_header(client, credential_id)

    try:
        return run_coro_as_sync(read())
    except NotFoundError:
        raise ExecutorError(
            f"source code credential {credential_id!r} does not exist (or was revoked)"
        ) from None
    except (InvalidInputError, UpstreamError) as exc:
        raise ExecutorError(exc.message) from None


class RegistryLogins:
    """The registry logins of one run, read once on first use; every password is masked.

    A run of a project's pipeline uses its project's docker credentials only
    (services/dockercredentials.py), and pulls an image of a private registry (one some
    project, or an operator's block, keeps a login for) every time. A run outside any
    project (`exec`, on an operator's machine) uses prefect-docker
    `DockerRegistryCredentials` blocks, as before projects existed.
    """

    def __init__(self, masker: SecretMasker, project_id: str = "") -> None:
        self.masker, self.project_id = masker, project_id
        self._lock = threading.Lock()
        self._read: tuple[dict[str, dict[str, str]], set[str]] | None = None

    def login(self, registry: str) -> dict[str, str] | None:
        """The engine's auth config for `registry` (a host, or empty for Docker Hub)."""
        return self._load()[0].get(registry_host(registry or DOCKER_HUB))

    def private(self, registry: str) -> bool:
        """Whether an image of `registry` is pulled with this run's login every time."""
        return registry_host(registry or DOCKER_HUB) in self._load()[1]

    def has_private(self) -> bool:
        return bool(self._load()[1])

    def _load(self) -> tuple[dict[str, dict[str, str]], set[str]]:
        with self._lock:
            if self._read is None:
                self._read = run_coro_as_sync(self._fetch())
            return self._read

    async def _fetch(self) -> tuple[dict[str, dict[str, str]], set[str]]:
        async with pipelines_client() as client:
            operators = await operator_logins(client, include_secrets=not self.project_id)
            if not self.project_id:
                logins, private = operators, set()
            else:
                logins = await registry_logins(client, self.project_id)
                private = await private_registries(client) | set(operators)
        for login in logins.values():
            self.masker.add(login["password"])
        return logins, private
