"""The forges prefect-pipelines speaks to, each behind the `Forge` interface (forges/base.py).

Adding a forge is one module of this package, its line in `FORGES`, its fake and its tests.
"""

from __future__ import annotations

from prefect_pipelines.errors import InvalidInputError
from prefect_pipelines.forges.base import (
    EVENTS,
    Delivery,
    Forge,
    ForgeUser,
    OAuthApp,
    Repository,
    Skip,
    Token,
)
from prefect_pipelines.forges.bitbucketcloud import BitbucketCloud
from prefect_pipelines.forges.bitbucketserver import BitbucketServer
from prefect_pipelines.forges.gitea import Gitea
from prefect_pipelines.forges.github import GitHub
from prefect_pipelines.forges.gitlab import GitLab

FORGES: dict[str, type[Forge]] = {forge.kind: forge for forge in (GitHub, GitLab, Gitea, BitbucketCloud, BitbucketServer)}
DEFAULT_KIND = GitHub.kind

__all__ = ["DEFAULT_KIND", "EVENTS", "FORGES", "Delivery", "Forge", "ForgeUser", "OAuthApp",
           "Repository", "Skip", "Token", "by_config_field", "forge_class", "forge_for"]


def forge_class(kind: str, *, field_name: str = "sourceCodeType") -> type[Forge]:
    """The forge of a `kind` (a 422 naming the field and the kinds there are, for others)."""
    found = FORGES.get(kind)
    if found is None:
        raise InvalidInputError(f"{kind!r} is not a source code type: one of {', '.join(FORGES)}",
                                field_name=field_name)
    return found


def forge_for(kind: str, api_url: str) -> Forge:
    """The forge of `kind` on the host whose API is at `api_url`."""
    return forge_class(kind)(api_url)


def by_config_field() -> dict[str, type[Forge]]:
    """`githubConfig` -> GitHub, ...: the cluster pipeline's fields."""
    return {forge.config_field: forge for forge in FORGES.values()}
