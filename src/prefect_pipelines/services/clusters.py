"""Cluster pipelines: a cluster's OAuth apps, one per forge (`ForgeApp` blocks), and its
work pool (`deploy`, kept in the cluster's settings block)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prefect.exceptions import ObjectNotFound

from prefect_pipelines.blocks import GitHubAppConfig
from prefect_pipelines.errors import InvalidInputError, NotFoundError, NotUniqueError
from prefect_pipelines.forges import FORGES, Forge, OAuthApp, by_config_field, forge_class
from prefect_pipelines.services.forge_apps import load_app, load_apps, load_settings, save_app
from prefect_pipelines.services.pipelines import repoint_cluster
from prefect_pipelines.services.pools import ensure_work_pool
from prefect_pipelines.services.projects import check_cluster_id
from prefect_pipelines.services.sourcecode import CredentialRecord, link_account
from prefect_pipelines.settings import Settings
from prefect_pipelines.vocabulary import FORGE_HOST_PATTERN, cluster_block_name, cluster_pool_name

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

_HOST = re.compile(FORGE_HOST_PATTERN)
_URL = re.compile(r"https?://[^\s]+")
_FIELDS = {"clientId", "clientSecret", "redirectUrl"}  # and the forge's config_keys


@dataclass
class ForgeConfigInput:
    """A `<kind>Config` as a request gives it."""

    forge: type[Forge]
    host: str
    tls: bool
    client_id: str
    client_secret: str | None = field(repr=False)
    redirect_url: str = ""
    api_url: str = ""  # Bitbucket Cloud's apiUrl, when given

    @classmethod
    def parse(cls, forge: type[Forge], data: Any, *, need_secret: bool) -> ForgeConfigInput:
        name = forge.config_field
        if not isinstance(data, dict):
            raise InvalidInputError(f"{name} must be an object", field_name=name)
        unknown = sorted(set(data) - _FIELDS - set(forge.config_keys))
        if unknown:
            raise InvalidInputError(f"{unknown[0]} is not a known field", field_name=f"{name}.{unknown[0]}")
        api_url = ""
        if "apiUrl" in forge.config_keys:
            api_url = data.get("apiUrl") or ""
            if not isinstance(api_url, str) or api_url and not _URL.fullmatch(api_url):
                raise InvalidInputError("apiUrl must be an http(s) URL", field_name=f"{name}.apiUrl")
            parts = urlsplit(api_url or forge.api_url_of(OAuthApp("", True, "", "")))
            host, tls = parts.netloc, parts.scheme == "https"
        else:
            host = data.get("host", forge.default_host)
            if not isinstance(host, str) or not _HOST.fullmatch(host):
                raise InvalidInputError(f"host must be a host name (and port), like {forge.default_host}",
                                        field_name=f"{name}.host")
            tls = data.get("tls", True)
            if not isinstance(tls, bool):
                raise InvalidInputError("tls must be true or false", field_name=f"{name}.tls")
        client_id = data.get("clientId")
        if not isinstance(client_id, str) or not client_id.strip():
            raise InvalidInputError("clientId is required", field_name=f"{name}.clientId",
                                    code="MissingRequired")
        secret = data.get("clientSecret")
        if secret is not None and (not isinstance(secret, str) or not secret.strip()):
            raise InvalidInputError("clientSecret must be a non-empty string",
                                    field_name=f"{name}.clientSecret")
        if need_secret and secret is None:
            raise InvalidInputError("clientSecret is required", field_name=f"{name}.clientSecret",
                                    code="MissingRequired")
        redirect = data.get("redirectUrl") or ""
        if not isinstance(redirect, str) or redirect and not _URL.fullmatch(redirect):
            raise InvalidInputError("redirectUrl must be an http(s) URL",
                                    field_name=f"{name}.redirectUrl")
        return cls(forge=forge, host=host, tls=tls, client_id=client_id, client_secret=secret,
                   redirect_url=redirect, api_url=api_url.rstrip("/"))

    def app(self, secret: str) -> OAuthApp:
        return OAuthApp(host=self.host, tls=self.tls, client_id=self.client_id,
                        client_secret=secret, redirect_url=self.redirect_url, api_url=self.api_url)


def parse_configs(data: dict[str, Any], *, need_secret: bool) -> dict[str, ForgeConfigInput]:
    """The `<kind>Config` fields of a body, by forge kind."""
    return {forge.kind: ForgeConfigInput.parse(forge, data[name], need_secret=need_secret)
            for name, forge in by_config_field().items() if data.get(name) is not None}


@dataclass
class ClusterRecord:
    """A cluster pipeline as stored (without the client secrets)."""

    cluster_id: str
    deploy: bool
    apps: dict[str, OAuthApp] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.cluster_id, "clusterId": self.cluster_id,
                               "deploy": self.deploy, "authorizeUrls": {}}
        for kind, forge in FORGES.items():
            app = self.apps.get(kind)
            out[forge.config_field] = None if app is None else _shown(forge, app)
            if app is not None:
                out["authorizeUrls"][kind] = forge(forge.api_url_of(app)).authorize_url(app)
        return out


def _shown(forge: type[Forge], app: OAuthApp) -> dict[str, Any]:
    """A forge's app as the cluster shows it: where it is and its client id."""
    where = {"host": app.host, "tls": app.tls, "apiUrl": forge.api_url_of(app)}
    return {**{key: where[key] for key in forge.config_keys}, "clientId": app.client_id}


async def _record(client: PrefectClient, block: GitHubAppConfig) -> ClusterRecord:
    return ClusterRecord(cluster_id=block.cluster_id, deploy=block.deploy,
                         apps=await load_apps(client, block.cluster_id, block))


async def read_cluster(client: PrefectClient, cluster_id: str) -> ClusterRecord:
    """The cluster pipeline.

    Raises:
        NotFoundError: nothing was ever saved for this cluster.
    """
    check_cluster_id(cluster_id)
    block = await load_settings(client, cluster_id)
    if block is None:
        raise NotFoundError(f"cluster pipeline {cluster_id!r} not found")
    return await _record(client, block)


async def list_clusters(client: PrefectClient, cluster_id: str) -> list[ClusterRecord]:
    """The cluster's pipeline settings: one, or none until they are saved."""
    check_cluster_id(cluster_id)
    block = await load_settings(client, cluster_id)
    return [] if block is None else [await _record(client, block)]


async def _secret_of(client: PrefectClient, cluster_id: str, config: ForgeConfigInput,
                     settings_block: GitHubAppConfig | None) -> str:
    """The config's secret, or the stored one of the same app when it gives none."""
    if config.client_secret is not None:
        return config.client_secret
    current = await load_app(client, cluster_id, config.forge.kind, settings_block)
    if current is None or current.client_id != config.client_id:
        raise InvalidInputError("clientSecret is required for a new OAuth app",
                                field_name=f"{config.forge.config_field}.clientSecret",
                                code="MissingRequired")
    return current.client_secret


async def save_cluster(client: PrefectClient, cluster_id: str, *, deploy: bool | None,
                       configs: dict[str, ForgeConfigInput], settings: Settings,
                       revoke: str | None = None, exists: bool | None = None) -> ClusterRecord:
    """Create or update a cluster pipeline: save the forges' apps given (and forget the
    one of kind `revoke`); `deploy` creates or removes its work pool.

    Args:
        exists: True: only update (404 when nothing was saved); False: only create (422 NotUnique
            when it exists); None: either.

    Raises:
        NotFoundError, NotUniqueError: as `exists` says.
        InvalidInputError: a new OAuth app without its secret (nothing is saved).
    """
    check_cluster_id(cluster_id)
    current = await load_settings(client, cluster_id)
    if exists is True and current is None:
        raise NotFoundError(f"cluster pipeline {cluster_id!r} not found")
    if exists is False and current is not None:
        raise NotUniqueError(f"cluster {cluster_id} already has its pipeline settings: use PUT",
                            field_name="clusterId")
    block = current or GitHubAppConfig(cluster_id=cluster_id)
    apps = {kind: config.app(await _secret_of(client, cluster_id, config, current))
            for kind, config in configs.items()}
    if deploy is not None and deploy != block.deploy:
        await set_deployed(client, cluster_id, deploy, settings)
        block.deploy = deploy
    for kind, app in apps.items():
        await save_app(client, cluster_id, kind, app, block)
    if revoke is not None:
        await save_app(client, cluster_id, revoke, None, block)
    await block.asave(cluster_block_name(cluster_id), overwrite=True, client=client)
    return await _record(client, block)


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
    return await save_cluster(client, cluster_id, deploy=deploy, configs={}, settings=settings)


async def authapp(client: PrefectClient, cluster_id: str, *, config: ForgeConfigInput,
                  code: str, user_id: str, settings: Settings
                  ) -> tuple[ClusterRecord, CredentialRecord]:
    """Configure a forge's OAuth app by using it: trade the code, then save the app and
    the caller's credential. A refused code or secret, or an unreachable host, saves nothing."""
    check_cluster_id(cluster_id)
    app = config.app(await _secret_of(client, cluster_id, config, await load_settings(client, cluster_id)))
    forge = config.forge(config.forge.api_url_of(app))
    credential = await link_account(client, cluster_id=cluster_id, user_id=user_id, forge=forge,
                                    app=app, code=code)
    config.client_secret = app.client_secret
    record = await save_cluster(client, cluster_id, deploy=None, settings=settings,
                                configs={forge.kind: config})
    return record, credential


async def authuser(client: PrefectClient, cluster_id: str, *, kind: str, code: str, user_id: str
                   ) -> CredentialRecord:
    """Link the caller's account on forge `kind` through the cluster's app there."""
    forge_type = forge_class(kind)
    app = await load_app(client, check_cluster_id(cluster_id), kind)
    if app is None:
        raise InvalidInputError(f"cluster {cluster_id} has no {forge_type.title} app configured: "
                                "run authapp first", field_name=forge_type.config_field)
    return await link_account(client, cluster_id=cluster_id, user_id=user_id,
                              forge=forge_type(forge_type.api_url_of(app)), app=app, code=code)


async def revoke_app(client: PrefectClient, cluster_id: str, kind: str,
                     settings: Settings) -> ClusterRecord:
    """Forget a forge's OAuth app; credentials made with it stay usable until revoked
    (those whose tokens expire can no longer be refreshed)."""
    forge_class(kind)
    await read_cluster(client, cluster_id)
    return await save_cluster(client, cluster_id, deploy=None, configs={}, settings=settings,
                              revoke=kind)
