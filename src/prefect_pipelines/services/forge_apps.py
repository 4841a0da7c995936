"""The OAuth apps of a cluster's pipelines, one `ForgeApp` block per cluster and forge.

A cluster configured before forge apps kept its GitHub app in its settings block
(`GitHubAppConfig`); that app is read as the cluster's GitHub app until the cluster's
GitHub app is saved (or revoked), which moves it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from prefect_pipelines.blocks import ForgeApp, GitHubAppConfig
from prefect_pipelines.forges import FORGES, OAuthApp
from prefect_pipelines.vocabulary import cluster_block_name, forge_app_block_name

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient


async def load_settings(client: PrefectClient, cluster_id: str) -> GitHubAppConfig | None:
    """The cluster's settings block (None until something was saved for it)."""
    try:
        return await GitHubAppConfig.aload(cluster_block_name(cluster_id), client=client)
    except (ValueError, ObjectNotFound):
        return None


def _legacy(settings: GitHubAppConfig | None) -> OAuthApp | None:
    if settings is None or not settings.client_id:
        return None
    return OAuthApp(host=settings.host, tls=settings.tls, client_id=settings.client_id,
                    client_secret=settings.client_secret.get_secret_value(),
                    redirect_url=settings.redirect_url or "")


async def load_app(client: PrefectClient, cluster_id: str, kind: str,
                   settings: GitHubAppConfig | None = None) -> OAuthApp | None:
    """The cluster's app on forge `kind`, or None."""
    try:
        block = await ForgeApp.aload(forge_app_block_name(cluster_id, kind), client=client)
    except (ValueError, ObjectNotFound):
        if kind != "github":
            return None
        return _legacy(settings or await load_settings(client, cluster_id))
    return OAuthApp(host=block.host, tls=block.tls, client_id=block.client_id,
                    client_secret=block.client_secret.get_secret_value(),
                    redirect_url=block.redirect_url, api_url=block.api_url)


async def load_apps(client: PrefectClient, cluster_id: str,
                    settings: GitHubAppConfig | None = None) -> dict[str, OAuthApp]:
    """Every app the cluster has, by forge kind."""
    found = {}
    for kind in FORGES:
        app = await load_app(client, cluster_id, kind, settings)
        if app is not None:
            found[kind] = app
    return found


async def save_app(client: PrefectClient, cluster_id: str, kind: str, app: OAuthApp | None,
                   settings: GitHubAppConfig) -> None:
    """Save (or, with None, delete) the cluster's app on forge `kind`. A GitHub app kept
    in the settings block moves out of it; the caller saves the settings."""
    name = forge_app_block_name(cluster_id, kind)
    if kind == "github" and settings.client_id:
        settings.client_id, settings.host, settings.tls, settings.redirect_url = "", "github.com", True, None
        settings.client_secret = SecretStr("")
    if app is None:
        try:
            document = await client.read_block_document_by_name(name, ForgeApp.get_block_type_slug())
            await client.delete_block_document(document.id)
        except ObjectNotFound:
            pass
        return
    await ForgeApp(cluster_id=cluster_id, kind=kind, host=app.host, tls=app.tls,
                   client_id=app.client_id, client_secret=app.client_secret,
                   redirect_url=app.redirect_url, api_url=app.api_url,
                   ).asave(name, overwrite=True, client=client)
