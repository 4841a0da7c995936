"""Prefect block types of prefect-pipelines: where every secret and every piece of state lives.

Prefect loads this module through the `prefect.collections` entry point, which registers
the block types. Secrets are `SecretStr` fields: the Prefect API shows them as `********`
unless a caller asks for them, and the /v3 API never returns them.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from prefect.blocks.fields import SecretDict
from pydantic import Field, SecretStr

_DOCS = "https://github.com/prefect-pipelines/prefect-pipelines#configuration"


class GitHubAppConfig(Block):
    """A cluster's pipeline settings: whether its work pool exists.

    Its GitHub fields are those of clusters configured before each forge's app had a
    `ForgeApp` block: they are read as the cluster's GitHub app until it is saved again.

    Examples:
        ```python
        from prefect_pipelines.blocks import GitHubAppConfig
        config = GitHubAppConfig.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines GitHub App"
    _block_type_slug = "pipelines-github-app"
    _description = "A cluster's pipeline settings (and, before forge apps, its GitHub OAuth app)."
    _documentation_url = _DOCS

    cluster_id: str = Field(description="The cluster these settings belong to.")
    host: str = Field(default="github.com", description="github.com or a GitHub Enterprise host.")
    tls: bool = Field(default=True, description="Whether the host is reached over https.")
    client_id: str = Field(default="", description="The OAuth app's client id (before forge apps).")
    client_secret: SecretStr = Field(default=SecretStr(""), description="The OAuth app's client secret.")
    redirect_url: str | None = Field(default=None, description="The OAuth redirect URL, if any.")
    deploy: bool = Field(default=False, description="Whether the cluster's work pool exists.")


class ForgeApp(Block):
    """The OAuth app of a cluster's pipelines on one forge (GitHub, GitLab, ...).

    Examples:
        ```python
        from prefect_pipelines.blocks import ForgeApp
        app = ForgeApp.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines Forge App"
    _block_type_slug = "pipelines-forge-app"
    _description = "The OAuth app a cluster's pipelines log users in with, on one forge."
    _documentation_url = _DOCS

    cluster_id: str = Field(description="The cluster this app belongs to.")
    kind: str = Field(description="The forge: github, gitlab, ...")
    host: str = Field(description="The forge's host (and port).")
    tls: bool = Field(default=True, description="Whether the host is reached over https.")
    client_id: str = Field(description="The OAuth app's client id.")
    client_secret: SecretStr = Field(description="The OAuth app's client secret.")
    redirect_url: str = Field(default="", description="The OAuth redirect URL, if any.")
    api_url: str = Field(default="", description="The forge's API, where the host does not say it.")


class SourceCodeCredential(Block):
    """A user's linked forge account: the token pipelines clone and call the forge with.

    Examples:
        ```python
        from prefect_pipelines.blocks import SourceCodeCredential
        credential = SourceCodeCredential.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines Source Code Credential"
    _block_type_slug = "pipelines-source-code-credential"
    _description = "A user's forge token, used to clone, list repositories and set statuses."
    _documentation_url = _DOCS

    credential_id: str = Field(description="The credential's id on the /v3 API.")
    cluster_id: str = Field(default="", description="The cluster the credential belongs to.")
    user_id: str = Field(description="The user who linked the account.")
    kind: str = Field(default="github", description="The source code provider.")
    login_name: str = Field(default="", description="The forge login.")
    display_name: str = Field(default="", description="The forge display name.")
    avatar_url: str = Field(default="", description="The forge avatar URL.")
    html_url: str = Field(default="", description="The forge profile URL.")
    api_url: str = Field(default="", description="The forge API base URL the token belongs to.")
    access_token: SecretStr = Field(description="The OAuth access token.")
    refresh_token: SecretStr = Field(default=SecretStr(""), description="The OAuth refresh token, if any.")
    expires_at: float | None = Field(default=None, description="When the access token expires (epoch s).")
    needs_relink: str = Field(default="", description="Why the token no longer works, if it does not.")


class SourceCodeRepositoryCache(Block):
    """The repositories a credential can see, as the forge listed them at the last refresh.

    Examples:
        ```python
        from prefect_pipelines.blocks import SourceCodeRepositoryCache
        cache = SourceCodeRepositoryCache.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines Repository Cache"
    _block_type_slug = "pipelines-repository-cache"
    _description = "The repositories a source code credential can see."
    _documentation_url = _DOCS

    credential_id: str = Field(description="The credential whose repositories these are.")
    user_id: str = Field(description="The user who owns the credential.")
    repositories: list[dict[str, Any]] = Field(
        default_factory=list, description="The repositories, in /v3 shape."
    )


class PipelineSecrets(Block):
    """A pipeline's write-only state: its webhook token and the id of its forge's hook.

    Examples:
        ```python
        from prefect_pipelines.blocks import PipelineSecrets
        secrets = PipelineSecrets.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines Pipeline Secrets"
    _block_type_slug = "pipelines-pipeline-secrets"
    _description = "A pipeline's webhook token and webhook id."
    _documentation_url = _DOCS

    project_id: str = Field(description="The project of the pipeline.")
    pipeline_id: str = Field(description="The pipeline's id.")
    token: SecretStr = Field(description="The webhook secret the forge signs deliveries with.")
    webhook_id: str = Field(default="", description="The id of the hook on the forge, if any.")
    webhook_kind: str = Field(default="github", description="The forge of the hook.")
    webhook_events: list[str] = Field(default_factory=list, description="The events the hook posts.")
    webhook_repo: str = Field(default="", description="The owner/name of the hooked repository.")
    credential_id: str = Field(default="", description="The credential that created the hook.")


class ApiToken(Block):
    """One /v3 API token: only a hash of it is stored.

    Examples:
        ```python
        from prefect_pipelines.blocks import ApiToken
        token = ApiToken.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines API Token"
    _block_type_slug = "pipelines-api-token"
    _description = "A hashed /v3 API token and the user it stands for."
    _documentation_url = _DOCS

    user_id: str = Field(description="The user the token stands for.")
    token_hash: str = Field(description="The SHA-256 of the token, hex.")
    created: str = Field(default="", description="When the token was made (ISO-8601 UTC).")


class PipelinesUser(Block):
    """A user of the /v3 API: whether they are an admin (a property of the user, not of a
    token).

    Examples:
        ```python
        from prefect_pipelines.blocks import PipelinesUser
        user = PipelinesUser.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines User"
    _block_type_slug = "pipelines-user"
    _description = "A /v3 API user and whether they are an admin."
    _documentation_url = _DOCS

    user_id: str = Field(description="The user's id.")
    admin: bool = Field(default=False, description="Admins hold every role in every project.")


class PipelinesProject(Block):
    """A project: the pipelines, executions, secrets and members of one team.

    Examples:
        ```python
        from prefect_pipelines.blocks import PipelinesProject
        project = PipelinesProject.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines Project"
    _block_type_slug = "pipelines-project"
    _description = "A project of prefect-pipelines: its name and settings."
    _documentation_url = _DOCS

    project_id: str = Field(description="`<clusterId>:<projectId>`.")
    name: str = Field(description="The project's name.")
    description: str = Field(default="", description="What the project is for.")
    creator_id: str = Field(default="", description="Who made it.")
    created: str = Field(default="", description="When it was made (ISO-8601 UTC).")
    settings: dict[str, Any] = Field(default_factory=dict, description="executorQuota and more.")


class ProjectRoleBinding(Block):
    """A user's role in a project (Rancher's projectroletemplatebinding).

    Examples:
        ```python
        from prefect_pipelines.blocks import ProjectRoleBinding
        binding = ProjectRoleBinding.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines Project Role Binding"
    _block_type_slug = "pipelines-project-role-binding"
    _description = "A user's role (owner, member, read-only) in a project."
    _documentation_url = _DOCS

    project_id: str = Field(description="The project.")
    user_id: str = Field(description="The user.")
    role: str = Field(description="project-owner, project-member or read-only.")
    created: str = Field(default="", description="When it was granted (ISO-8601 UTC).")


class ProjectSecret(Block):
    """A secret of a project: named values its pipelines' steps get through `envFrom`.

    Examples:
        ```python
        from prefect_pipelines.blocks import ProjectSecret
        secret = ProjectSecret.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines Project Secret"
    _block_type_slug = "pipelines-project-secret"
    _description = "Named secret values of one project, for its pipelines' envFrom."
    _documentation_url = _DOCS

    project_id: str = Field(description="The project it belongs to.")
    name: str = Field(description="Its name in the project.")
    data: SecretDict = Field(description="KEY -> value; never shown.")


class ProjectDockerCredential(Block):
    """Registry logins of a project: what its steps pull private images and push with.

    Examples:
        ```python
        from prefect_pipelines.blocks import ProjectDockerCredential
        logins = ProjectDockerCredential.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines Project Docker Credential"
    _block_type_slug = "pipelines-project-docker-credential"
    _description = "Registry logins (host -> username, password) of one project's pipelines."
    _documentation_url = _DOCS

    project_id: str = Field(description="The project it belongs to.")
    name: str = Field(description="Its name in the project.")
    usernames: dict[str, str] = Field(description="Registry host -> username.")
    passwords: SecretDict = Field(description="Registry host -> password; never shown.")


class RunNumberClaim(Block):
    """A run number taken by one execution of a pipeline (internal, kept anonymous).

    Examples:
        ```python
        from prefect_pipelines.blocks import RunNumberClaim
        claim = RunNumberClaim.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines Run Number"
    _block_type_slug = "pipelines-run-number"
    _description = "A run number taken by one pipeline execution (internal)."
    _documentation_url = _DOCS

    flow_run_id: str = Field(default="", description="The flow run that holds the number.")


class PipelinesNotifier(Block):
    """A notifier of a cluster (Rancher's): who it is, and the Prefect notification block
    (Slack, Microsoft Teams, PagerDuty, custom webhook) or prefect-email's
    EmailServerCredentials that sends for it, which holds its secrets.

    Examples:
        ```python
        from prefect_pipelines.blocks import PipelinesNotifier
        notifier = PipelinesNotifier.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines Notifier"
    _block_type_slug = "pipelines-notifier"
    _description = "A cluster's notifier for pipeline runs, and the block that sends for it."
    _documentation_url = _DOCS

    notifier_id: str = Field(description="`<clusterId>:n-<id>`.")
    cluster_id: str = Field(description="The cluster whose projects may name it.")
    name: str = Field(description="Its name.")
    kind: str = Field(description="slack, smtp, webhook, pagerduty or msteams.")
    sender_block: str = Field(description="The block document (type slug/name) that sends.")
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="Its settings without their secrets.")
    creator_id: str = Field(default="", description="Who made it.")
    created: str = Field(default="", description="When it was made (ISO-8601 UTC).")


class NoticeClaim(Block):
    """The claim of one execution's notifications (internal, kept anonymous): whoever
    made it sends them; `sent` once they went.

    Examples:
        ```python
        from prefect_pipelines.blocks import NoticeClaim
        claim = NoticeClaim.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Pipelines Notice Claim"
    _block_type_slug = "pipelines-notice-claim"
    _description = "Who sends the notifications of one pipeline execution (internal)."
    _documentation_url = _DOCS

    flow_run_id: str = Field(default="", description="The execution's flow run.")
    owner: str = Field(default="", description="The facade or worker that sends them.")
    sent: bool = Field(default=False, description="Whether they were sent.")


BLOCK_TYPES: tuple[type[Block], ...] = (
    GitHubAppConfig,
    ForgeApp,
    SourceCodeCredential,
    SourceCodeRepositoryCache,
    PipelineSecrets,
    ApiToken,
    PipelinesProject,
    PipelinesUser,
    ProjectRoleBinding,
    ProjectSecret,
    RunNumberClaim,
    PipelinesNotifier,
    NoticeClaim,
)

__all__ = [
    "ApiToken",
    "BLOCK_TYPES",
    "ForgeApp",
    "GitHubAppConfig",
    "NoticeClaim",
    "PipelineSecrets",
    "PipelinesNotifier",
    "PipelinesProject",
    "PipelinesUser",
    "ProjectRoleBinding",
    "ProjectSecret",
    "RunNumberClaim",
    "SourceCodeCredential",
    "SourceCodeRepositoryCache",
]
