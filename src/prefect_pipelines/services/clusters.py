"""Cluster pipelines: a cluster's GitHub OAuth app (a block) and its work pool (`deploy`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect.exceptions import ObjectNotFound

from prefect_pipelines.blocks import GitHubAppConfig
from prefect_pipelines.errors import ConflictError, InvalidInputError, NotFoundError
from prefect_pipelines.services import github
from prefect_pipelines.services.pipelines import repoint_cluster
from prefect_pipelines.services.pools import ensure_work_pool
from prefect_pipelines.services.sourcecode import CredentialRecord, link_account
from prefect_pipelines.settings import Settings
from prefect_pipelines.vocabulary import cluster_block_name, cluster_pool_name

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

_CLUSTER = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?")


def check_cluster_id(cluster_id: str) -> str:
    if not _CLUSTER.fullmatch(cluster_id) or len(cluster_id) > 63:
        raise InvalidInputError(f"{cluster_id!r} is not a cluster id: lowercase letters, "
                                "digits and single dashes", field_name="clusterId")
    return cluster_id


@dataclass
class GitHubConfigInput:
    """githubConfig as a request gives it."""

    host: str
    tls: bool
    client_id: str
    client_secret: str | None

    @classmethod
    def parse(cls, data: Any, *, need_secret: bool) -> GitHubConfigInput:
        if not isinstance(data, dict):
            raise InvalidInputError("githubConfig must be an object", field_name="githubConfig")
        unknown = sorted(set(data) - {"host", "tls", "clientId", "clientSecret", "redirectUrl"})
        if unknown:
            raise InvalidInputError(f"{unknown[0]} is not a known field",
                                    field_name=f"githubConfig.{unknown[0]}")
        host = data.get("host", "github.com")
        if not isinstance(host, str) or not _HOST.fullmatch(host):
            raise InvalidInputError("host must be a host name (and port), like github.com",
                                    field_name="githubConfig.host")
        tls = data.get("tls", True)
        if not isinstance(tls, bool):
            raise InvalidInputError("tls must be true or false", field_name="githubConfig.tls")
        client_id = data.get("clientId")
        if not isinstance(client_id, str) or not client_id.strip():
            raise InvalidInputError("clientId is required", field_name="githubConfig.clientId",
                                    code="MissingRequired")
        secret = data.get("clientSecret")
        if secret is not None and (not isinstance(secret, str) or not secret.strip()):
            raise InvalidInputError("clientSecret must be a non-empty string",
                                    field_name="githubConfig.clientSecret")
        if need_secret and secret is None:
            raise InvalidInputError("clientSecret is required", field_name="githubConfig.clientSecret",
                                    code="MissingRequired")
        return cls(host=host, tls=tls, client_id=client_id, client_secret=secret)


@dataclass
class ClusterRecord:
    """A cluster pipeline as stored (without the client secret)."""

    cluster_id: str
    deploy: bool
    host: str | None = None
    tls: bool = True
    client_id: str | None = None

    def fields(self) -> dict[str, Any]:
        config = None
        if self.client_id is not None:
            config = {"host": self.host, "tls": self.tls, "clientId": self.client_id}
        return {"id": self.cluster_id, "clusterId": self.cluster_id, "deploy": self.deploy,
                "githubConfig": config}

    @property
    def api_url(self) -> str:
        return github.api_base_url(self.host or github.GITHUB_COM, self.tls)


async def _load(client: PrefectClient, cluster_id: str) -> GitHubAppConfig | None:
    try:
        return await GitHubAppConfig.aload(cluster_block_name(cluster_id), client=client)
    except (ValueError, ObjectNotFound):
        return None


async def read_cluster(client: PrefectClient, cluster_id: str) -> ClusterRecord:
    """The cluster pipeline (created on first use, with nothing configured).

    Raises:
        NotFoundError: nothing was ever saved for this cluster.
    """
    check_cluster_id(cluster_id)
    block = await _load(client, cluster_id)
    if block is None:
        raise NotFoundError(f"cluster pipeline {cluster_id!r} not found")
    return _record(block)


async def list_clusters(client: PrefectClient, cluster_id: str) -> list[ClusterRecord]:
    """The cluster's pipeline settings: one, or none until they are saved."""
    check_cluster_id(cluster_id)
    block = await _load(client, cluster_id)
    return [] if block is None else [_record(block)]


def _record(block: GitHubAppConfig) -> ClusterRecord:
    configured = bool(block.client_id)
    return ClusterRecord(cluster_id=block.cluster_id, deploy=block.deploy,
                         host=block.host if configured else None, tls=block.tls,
                         client_id=block.client_id if configured else None)


async def save_cluster(client: PrefectClient, cluster_id: str, *, deploy: bool | None,
                       config: GitHubConfigInput | None, settings: Settings,
                       keep_config: bool = True, exists: bool | None = None) -> ClusterRecord:
    """Create or update a cluster pipeline; `deploy` creates or removes its work pool.

    Args:
        exists: True: only update (404 when nothing was saved); False: only create (409
            when it exists); None: either.

    Raises:
        NotFoundError, ConflictError: as `exists` says.
        InvalidInputError: a new OAuth app without its secret.
    """
    check_cluster_id(cluster_id)
    current = await _load(client, cluster_id)
    if exists is True and current is None:
        raise NotFoundError(f"cluster pipeline {cluster_id!r} not found")
    if exists is False and current is not None:
        raise ConflictError(f"cluster {cluster_id} already has its pipeline settings: use PUT",
                            field_name="clusterId")
    block = current or GitHubAppConfig(cluster_id=cluster_id, client_id="", client_secret="")
    if config is not None:
        secret = config.client_secret
        if secret is None:
            if current is None or not current.client_id or current.client_id != config.client_id:
                raise InvalidInputError("clientSecret is required for a new OAuth app",
                                        field_name="githubConfig.clientSecret",
                                        code="MissingRequired")
            secret = current.client_secret.get_secret_value()
        block = GitHubAppConfig(cluster_id=cluster_id, host=config.host, tls=config.tls,
                                client_id=config.client_id, client_secret=secret,
                                deploy=block.deploy)
    elif not keep_config:
        block = GitHubAppConfig(cluster_id=cluster_id, client_id="", client_secret="",
                                deploy=block.deploy)
    if deploy is not None and deploy != block.deploy:
        await set_deployed(client, cluster_id, deploy, settings)
        block.deploy = deploy
    await block.asave(cluster_block_name(cluster_id), overwrite=True, client=client)
    return _record(block)


async def set_deployed(client: PrefectClient, cluster_id: str, deploy: bool,
                       settings: Settings) -> None:
    """Create the cluster's work pool and move its pipelines there, or move them back to
    the default pool and delete it."""
    name = cluster_pool_name(cluster_id)
    if deploy:
        await ensure_work_pool(client, name)
        await repoint_cluster(client, cluster_id, name, settings)
        return
    await repoint_cluster(client, cluster_id, settings.work_pool, settings)
    try:
        await client.delete_work_pool(name)
    except ObjectNotFound:
        pass


async def deploy_cluster(client: PrefectClient, cluster_id: str, deploy: bool,
                         settings: Settings) -> ClusterRecord:
    """The `deploy` / `destroy` actions."""
    await read_cluster(client, cluster_id)
    return await save_cluster(client, cluster_id, deploy=deploy, config=None, settings=settings)


async def authapp(client: PrefectClient, cluster_id: str, *, config: GitHubConfigInput,
                  code: str, user_id: str, settings: Settings
                  ) -> tuple[ClusterRecord, CredentialRecord]:
    """Configure the OAuth app by using it: trade the code, then save the app and the
    caller's credential. A refused code or secret, or an unreachable host, saves nothing."""
    check_cluster_id(cluster_id)
    secret = config.client_secret
    if secret is None:
        current = await _load(client, cluster_id)
        if current is None or current.client_id != config.client_id:
            raise InvalidInputError("clientSecret is required", field_name="githubConfig.clientSecret",
                                    code="MissingRequired")
        secret = current.client_secret.get_secret_value()
    api_url = github.api_base_url(config.host, config.tls)
    credential = await link_account(client, cluster_id=cluster_id, user_id=user_id,
                                    api_url=api_url, client_id=config.client_id,
                                    client_secret=secret, code=code)
    record = await save_cluster(client, cluster_id, deploy=None, settings=settings,
                                config=GitHubConfigInput(host=config.host, tls=config.tls,
                                                         client_id=config.client_id,
                                                         client_secret=secret))
    return record, credential


async def authuser(client: PrefectClient, cluster_id: str, *, code: str, user_id: str
                   ) -> CredentialRecord:
    """Link the caller's GitHub account through the cluster's OAuth app."""
    block = await _load(client, cluster_id)
    if block is None or not block.client_id:
        raise InvalidInputError(f"cluster {cluster_id} has no GitHub app configured: "
                                "run authapp first", field_name="githubConfig")
    return await link_account(
        client, cluster_id=cluster_id, user_id=user_id,
        api_url=github.api_base_url(block.host, block.tls), client_id=block.client_id,
        client_secret=block.client_secret.get_secret_value(), code=code)


async def revoke_app(client: PrefectClient, cluster_id: str, settings: Settings) -> ClusterRecord:
    """Forget the OAuth app; credentials made with it stay usable until revoked."""
    await read_cluster(client, cluster_id)
    return await save_cluster(client, cluster_id, deploy=None, config=None, settings=settings,
                              keep_config=False)

