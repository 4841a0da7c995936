"""Request and response models of the /v3 API (Rancher's Norman shapes)."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from prefect_pipelines.forges import FORGES, Forge
from prefect_pipelines.services.projects import MAX_QUOTA
from prefect_pipelines.translator.branches import BRANCH_NAME_PATTERN
from prefect_pipelines.translator.quantities import CPU_PATTERN, MEMORY_PATTERN
from prefect_pipelines.translator.schedule import TIMEZONES
from prefect_pipelines.translator.spec import Cache, Constraint, Notification, Stage
from prefect_pipelines.vocabulary import (
    ENV_NAME_PATTERN,
    FORGE_HOST_PATTERN,
    NAME_PATTERN,
    NOT_BLANK_PATTERN,
    PROJECT_ID_PATTERN,
    REGISTRY_HOST_PATTERN,
    SECRET_KEY_PATTERN,
    USER_ID_PATTERN,
    anchored,
)

# The forges of forges.FORGES, by kind.
SourceCodeType = Literal[tuple(FORGES)]  # type: ignore[valid-type]
State = Literal["waiting", "queueing", "running", "success", "failed", "skipped", "aborted"]
T = TypeVar("T")


def _integral(value: Any) -> Any:
    """A JSON number without a fraction (`465.0`) is an integer, as JSON Schema reads it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def Integer(least: int, most: int) -> Any:  # noqa: N802 - a type
    """An integer from `least` to `most`; `465.0` is one too."""
    return Annotated[int, Field(ge=least, le=most), BeforeValidator(_integral)]


def shape(pattern: str, max_length: int | None = None) -> dict[str, Any]:
    """The JSON schema of a string of `pattern`: what the OpenAPI document says a field or
    parameter takes. Only said: the server's own check refuses anything else, with a
    message that names what is wrong (a schema's own would quote the regular expression)."""
    return {"pattern": anchored(pattern), **({"maxLength": max_length} if max_length else {})}


# What the OpenAPI document says of a field, beside its type (the checks are the routes'
# and services', with messages that name what is wrong).
_TEXT = shape(NOT_BLANK_PATTERN)  # something other than white space
_NAME = shape(NAME_PATTERN)
_CPU = shape(CPU_PATTERN)
_URL = shape(r"|https?://[^\s\x00]+")  # or nothing
_MEMORY = shape(MEMORY_PATTERN)
# A branch (or nothing: no branch).
BRANCH = shape(f"|{BRANCH_NAME_PATTERN}")
_ENV = {"propertyNames": {**shape(ENV_NAME_PATTERN), "not": {"pattern": "^CICD_"}}}
# A registry as a docker credential's key: a host (any case), or its URL.
_REGISTRY_KEY = {"propertyNames": shape(
    "(?:https?://)?" + REGISTRY_HOST_PATTERN.replace("a-z", "A-Za-z") + "/?")}


# The models request bodies are declared with (body_of): the OpenAPI document's components.
REQUEST_MODELS: dict[str, type[BaseModel]] = {}


def body_of(*models: type[BaseModel], required: bool = True, yaml: bool = False) -> dict[str, Any]:
    """A route's `openapi_extra` declaring its JSON body: one model, or any of several (an
    action's input); `yaml`: the same fields as YAML too."""
    for model in models:
        REQUEST_MODELS[model.__name__] = model
    refs = [{"$ref": f"#/components/schemas/{model.__name__}"} for model in models]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    content = {"application/json": {"schema": schema}}
    if yaml:
        content["application/yaml"] = {"schema": schema}
    return {"requestBody": {"required": required, "content": content}}


class ApiModel(BaseModel):
    """Response models: camelCase names as written, extra fields allowed in output."""

    model_config = ConfigDict(extra="forbid")


class Resource(ApiModel):
    """Fields every resource has."""

    id: str
    type: str
    links: dict[str, str] = Field(description="self, update, remove and named links.")
    actions: dict[str, str] = Field(description="Action name -> URL to POST to.")


class Pagination(ApiModel):
    """Where a collection page sits."""

    limit: int
    total: int | None = None
    next: str | None = None
    partial: bool = False


class Collection(ApiModel, Generic[T]):
    """A page of resources."""

    type: Literal["collection"] = "collection"
    resourceType: str
    data: list[T]
    pagination: Pagination
    links: dict[str, str]
    filters: dict[str, list[dict[str, str]] | None] | None = Field(
        default=None, description="The filters it takes, with this request's values.")
    sort: dict[str, str] | None = Field(default=None, description="name, order, reverse (a link).")
    sortLinks: dict[str, str] | None = Field(default=None, description="field -> a link sorting by it.")


class ErrorBody(ApiModel):
    """Every error: one shape."""

    type: Literal["error"] = "error"
    status: int
    code: str
    message: str
    fieldName: str | None = None


# A definition every project can save: one step, no secrets, no repository.
_PIPELINE_EXAMPLE = {"name": "hello", "stages": [{"name": "greet", "steps": [
    {"runScriptConfig": {"image": "busybox", "shellScript": "echo hello"}}]}], "timeout": 10}


class PipelineIn(BaseModel):
    """The body of POST/PUT on pipelines: the definition and its triggers."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [_PIPELINE_EXAMPLE]})

    projectId: str | None = Field(default=None, description="Must match the project in the path.")
    name: str = Field(description="The pipeline's id, unique in the project.",
                      json_schema_extra=_NAME)
    stages: list[Stage] | None = Field(
        default=None, description="Stages of steps (see the pipeline file format); or give "
        "repositoryUrl instead.")
    repositoryUrl: str | None = Field(
        default=None, description="Instead of stages: the repository whose "
        ".rancher-pipeline.yml each run reads at the commit it builds.")
    sourceCodeCredentialId: str | None = Field(
        default=None, description="With repositoryUrl: your source code credential that clones it.")
    configPath: str | None = Field(
        default=None, description="With repositoryUrl: the pipeline file (default "
        ".rancher-pipeline.yml, else .rancher-pipeline.yaml).")
    timeout: float | int = Field(default=60, description="Minutes before a run fails.")
    triggerCronExpression: str | None = Field(
        default=None, description="5-field cron (minute hour day month weekday).",
        json_schema_extra={"pattern": r"^\s*(?:@[a-z]+|[^\s\x00]+(?:\s+[^\s\x00]+){4})\s*$"})
    triggerCronTimezone: Literal[TIMEZONES] | None = Field(  # type: ignore[valid-type]
        default=None, description="IANA timezone (default UTC).")
    triggerWebhook: bool = Field(default=False, description="Run on pushes, pull requests and tags.")
    triggerWebhookPush: bool | None = Field(default=None, description="Run on pushes to a branch.")
    triggerWebhookPr: bool | None = Field(default=None, description="Run on opened and updated pull requests.")
    triggerWebhookTag: bool | None = Field(default=None, description="Run on pushed tags.")
    branch: Constraint | str | list[str] | None = Field(
        default=None, description="With stages: the branches that may run the pipeline at "
        "all (globs: `main`, `[main, 'release/*']` or `{include, exclude}`). With "
        "repositoryUrl: the branch cron and manual runs build when none is given.")
    notification: Notification | None = Field(
        default=None, description="Who is told when a run ends, and when (a repository's "
        "file may carry its own, which wins).")
    publicBadge: bool = Field(default=False, description="Serve badge.svg without a token.")
    cache: list[Cache] | None = Field(
        default=None, description="Directories kept between runs (docker executor).")


class Pipeline(Resource):
    """A pipeline: a Prefect deployment of run-pipeline."""

    projectId: str
    name: str
    stages: list[dict[str, Any]]
    timeout: float | int
    triggerCronExpression: str | None
    triggerCronTimezone: str | None
    triggerWebhook: bool
    triggerWebhookPush: bool = Field(description="Whether pushes run it (triggerWebhook means all three).")
    triggerWebhookPr: bool
    triggerWebhookTag: bool
    branch: dict[str, list[str]] | str | None = Field(
        default=None, description="A stored definition's branches that may run it "
        "(include/exclude globs); a repository's pipeline's default branch.")
    repositoryUrl: str | None = Field(
        default=None, description="The repository whose pipeline file runs (null: stages are stored).")
    sourceCodeCredentialId: str | None = None
    configPath: str | None = None
    notification: dict[str, Any] | None = Field(
        default=None, description="recipients, condition, message (as given).")
    publicBadge: bool = False
    cache: list[dict[str, Any]] | None = Field(default=None, description="The directories "
                                                "kept between runs (path, key), as given.")
    caches: list[dict[str, Any]] | None = Field(
        default=None, description="Their saves (GET of one pipeline): path, key as expanded, "
        "size in bytes, saved, execution.")
    cacheSize: int | None = Field(default=None, description="Bytes all its saves take.")
    creatorId: str
    created: str | None
    state: Literal["active", "inactive"]
    nextRun: int
    lastExecutionId: str | None
    lastRunState: State | None
    lastStarted: str | None
    nextStart: str | None


class RepositoryBranches(ApiModel):
    """The branches of a pipeline's repository."""

    branches: list[str]


class RepositoryConfigs(ApiModel):
    """Per branch: `config` (the definition its file describes, its clone stage first) and
    `commit` and `file`, or `error` saying why there is none."""

    configs: dict[str, dict[str, Any]]


class RepositoryCommit(ApiModel):
    """The commit that `PUT yaml` made."""

    branch: str
    file: str
    commit: str


class RunInput(BaseModel):
    """Input of the `run` action."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [
                                  {"branch": "main", "env": {"GREETING": "hello"}}]})

    branch: str | None = Field(default=None, description="The branch to build.",
                               json_schema_extra=BRANCH)
    env: dict[str, str] | None = Field(
        default=None, description="Run variables, NAME -> value: every step gets them, over "
        "the pipeline's own env (CICD_* names cannot be set). Recorded on the execution and "
        "kept by a rerun.", json_schema_extra=_ENV)


class StepStatus(ApiModel):
    state: State
    started: str | None
    ended: str | None


class StageStatus(ApiModel):
    name: str = Field(description="The stage's name.")
    state: State
    started: str | None
    ended: str | None
    steps: list[StepStatus]


class PipelineExecution(Resource):
    """An execution: a flow run of the pipeline's deployment."""

    projectId: str
    pipelineId: str
    run: int
    triggeredBy: Literal["user", "cron", "webhook", "prefect"] = Field(
        description="prefect: started from the Prefect UI or `prefect deployment run`.")
    triggerUserId: str | None = Field(description="Who ran it (null for cron, webhook, prefect).")
    branch: str = Field(description="The branch it built.")
    ref: str = Field(description="The git ref it built (refs/heads/..., refs/tags/..., refs/pull/N/head).")
    event: str = Field(description="push, pull_request, tag, manual or cron.")
    repositoryUrl: str = Field(description="The repository it cloned ('' when none).")
    message: str = Field(description="The commit's subject (a pull request's title).")
    author: str
    email: str
    avatarUrl: str
    htmlLink: str = Field(description="The delivery's compare or pull request page.")
    title: str = Field(description="The pull request's title.")
    pipeline: dict[str, Any]
    env: dict[str, str] = Field(default_factory=dict, description="The run's variables.")
    commit: str
    state: State
    stateMessage: str = Field(description="How the execution ended (why it failed or was "
                              "aborted); empty until it ends.")
    started: str | None
    ended: str | None
    stages: list[StageStatus]


class PipelineExecutionLog(Resource):
    """A step's output."""

    projectId: str
    pipelineExecutionId: str
    stage: int
    step: int
    message: str


class NormanSchema(ApiModel):
    """A Norman schema: one type of the API, as Rancher's clients read it."""

    id: str
    type: Literal["schema"] = "schema"
    links: dict[str, str] = Field(description="self, and collection for a listable type.")
    pluralName: str
    collectionMethods: list[str]
    resourceMethods: list[str]
    resourceFields: dict[str, dict[str, Any]] = Field(
        description="name -> {type, nullable, required, create, update, default, options}.")
    resourceActions: dict[str, dict[str, str]] = Field(description="name -> {input, output}.")
    collectionActions: dict[str, dict[str, str]]
    collectionFilters: dict[str, dict[str, list[str]]] = Field(description="name -> {modifiers}.")


class ApiRoot(ApiModel):
    type: str
    id: str
    links: dict[str, str]


PipelineCollection = Collection[Pipeline]
NormanSchemaCollection = Collection[NormanSchema]
PipelineExecutionCollection = Collection[PipelineExecution]
PipelineExecutionLogCollection = Collection[PipelineExecutionLog]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    # Errors are JSON on every route, also those whose answer is text (view, export).
    status: {"model": ErrorBody, "description": description,
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    for status, description in {
        400: "Bad request", 401: "No valid token", 403: "Not allowed", 404: "Not found, or the action is not available now",
        409: "Conflict: the resource's state", 413: "Too large", 415: "Unsupported media type",
        422: "Invalid input, or the name is taken (NotUnique)", 424: "The forge failed or refused", 503: "Busy; retry",
        504: "Prefect did not say whether the write was made; look before retrying",
    }.items()
}


def _where(forge: type[Forge]) -> dict[str, Any]:
    """The fields that say where a forge is: host and tls, or an apiUrl."""
    if "apiUrl" in forge.config_keys:
        return {"apiUrl": (str | None, Field(default=None, description=(
            f"{forge.title}'s API (default its own); for a proxy, or a fake in tests."),
            json_schema_extra=_URL))}
    return {"host": (str, Field(default=forge.default_host,
                                description=f"{forge.default_host} or a self-managed {forge.title} host.",
                                json_schema_extra=shape(FORGE_HOST_PATTERN))),
            "tls": (bool, Field(default=True, description="false: reach a self-managed host over http."))}


def _config_out(forge: type[Forge]) -> type[ApiModel]:
    """A forge's app as responses show it (never the secret)."""
    return create_model(f"{forge.title.replace(' ', '')}Config", __base__=ApiModel,
                        clientId=(str, ...), **{key: (field[0], ...) for key, field in _where(forge).items()})


class _ForgeConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    clientId: str = Field(json_schema_extra=_TEXT)
    clientSecret: str | None = Field(default=None, description="Write-only; left out on PUT, "
                                     "the stored one is kept.", json_schema_extra=_TEXT)
    redirectUrl: str | None = Field(default=None, json_schema_extra=_URL)


def _config_in(forge: type[Forge], new: bool = False) -> type[_ForgeConfigIn]:
    secret = {"clientSecret": (str, Field(description="Write-only.", json_schema_extra=_TEXT))}
    return create_model(
        f"{forge.title.replace(' ', '')}Config{'Create' if new else 'In'}", __base__=_ForgeConfigIn,
        __doc__=f"{forge.config_field} in a request; clientSecret is write-only.",
        **_where(forge), **(secret if new else {}))


# One `<kind>Config` per forge of the registry: adding a forge adds its fields here.
CONFIG_IN: dict[str, type[_ForgeConfigIn]] = {
    forge.config_field: _config_in(forge) for forge in FORGES.values()}
_OPTIONAL_CONFIGS: dict[str, Any] = {name: (model | None, None) for name, model in CONFIG_IN.items()}
_NEW_CONFIGS: dict[str, Any] = {forge.config_field: (_config_in(forge, new=True) | None, None)
                                for forge in FORGES.values()}

ClusterPipelineIn = create_model(
    "ClusterPipelineIn", __config__=ConfigDict(extra="forbid", strict=True),
    __doc__="Body of PUT on clusterpipelines: any of the forges' apps, and deploy.",
    clusterId=(str | None, None), deploy=(bool | None, None), **_OPTIONAL_CONFIGS)
ClusterPipelineCreate = create_model(
    "ClusterPipelineCreate", __config__=ConfigDict(extra="forbid", strict=True),
    __doc__="Body of POST on clusterpipelines: any of the forges' apps (with their secrets), "
            "and deploy.",
    clusterId=(str | None, None), deploy=(bool | None, None), **_NEW_CONFIGS)

AuthAppInput = create_model(
    "AuthAppInput", __config__=ConfigDict(extra="forbid", strict=True),
    __doc__="Input of `authapp`: one forge's OAuth app and a code the forge gave for it.",
    code=(str, Field(json_schema_extra=_TEXT)), **_OPTIONAL_CONFIGS)


class AuthUserInput(BaseModel):
    """Input of `authuser`: a code the forge gave the caller for the cluster's app."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sourceCodeType: SourceCodeType = "github"
    code: str = Field(json_schema_extra=_TEXT)


class RevokeAppInput(BaseModel):
    """Input of `revokeapp`: which forge's app to forget."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sourceCodeType: SourceCodeType = "github"


ClusterPipeline = create_model(
    "ClusterPipeline", __base__=Resource,
    clusterId=(str, ...), deploy=(bool, ...),
    authorizeUrls=(dict[SourceCodeType, str], Field(
        description="Per forge with an app: where a user's browser goes to grant it access "
                    "(the code it returns is what authapp and authuser take).")),
    **{forge.config_field: (_config_out(forge) | None, ...) for forge in FORGES.values()})


class SourceCodeCredential(Resource):
    clusterId: str
    kind: SourceCodeType
    userId: str
    creatorId: str
    name: str
    loginName: str
    state: Literal["active", "relink"] = Field(
        description="relink: the forge refused to refresh its token; link the account again")
    transitioning: Literal["no", "error"]
    transitioningMessage: str


class RepositoryPermissions(ApiModel):
    pull: bool
    push: bool
    admin: bool


class SourceCodeRepository(Resource):
    clusterId: str
    kind: SourceCodeType
    userId: str
    creatorId: str
    sourceCodeCredentialId: str
    url: str
    permissions: RepositoryPermissions
    language: str
    defaultBranch: str


class HookAnswer(ApiModel):
    """What the webhook receiver says about a delivery."""

    type: Literal["hookResult"] = "hookResult"
    message: str
    executionId: str | None = None


class ProjectSettings(BaseModel):
    """A project's settings (Rancher's executor quota; default step limits)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    executorQuota: Integer(-MAX_QUOTA, MAX_QUOTA) | None = Field(  # type: ignore[valid-type]
        default=None, description="Most executions running at once (0 or less: no limit).")
    cpuRequest: str | None = Field(default=None, description="CPU request of a step that sets "
                                   "none (500m, 1).", json_schema_extra=_CPU)
    cpuLimit: str | None = Field(default=None, description="CPU limit of a step that sets none.",
                                 json_schema_extra=_CPU)
    memoryRequest: str | None = Field(default=None, description="Memory request of a step that "
                                      "sets none (64Mi, 1Gi).", json_schema_extra=_MEMORY)
    memoryLimit: str | None = Field(default=None, description="Memory limit of a step that sets "
                                    "none.", json_schema_extra=_MEMORY)
    allowPrivileged: bool | None = Field(default=None, description="Whether steps may set "
                                         "privileged: true (admins only).")


class ProjectIn(BaseModel):
    """The body of POST/PUT on projects."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [
                                  {"clusterId": "local", "name": "team-a", "description": "Team A"}]})

    clusterId: str | None = Field(default=None, description="The cluster (POST; default local).")
    name: str | None = Field(default=None, description="The project's name (required on POST).",
                             json_schema_extra=_TEXT)
    description: str | None = None
    settings: ProjectSettings | None = None


class ProjectCreate(ProjectIn):
    """The body of POST on projects."""

    name: str = Field(description="The project's name.", json_schema_extra=_TEXT)


class Project(Resource):
    clusterId: str
    name: str
    description: str
    creatorId: str
    created: str
    settings: dict[str, Any]


class BindingIn(BaseModel):
    """The body of POST /v3/projectroletemplatebindings."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [{"projectId": "local:p-abc12", "userId": "bob",
                                                              "roleTemplateId": "project-member"}]})

    projectId: str = Field(json_schema_extra=shape(PROJECT_ID_PATTERN))
    userId: str = Field(json_schema_extra=shape(USER_ID_PATTERN))
    roleTemplateId: Literal["project-owner", "project-member", "read-only"]


class ProjectRoleTemplateBinding(Resource):
    projectId: str
    userId: str
    roleTemplateId: str
    created: str


class SecretIn(BaseModel):
    """The body of POST/PUT on a project's secrets."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [
                                  {"name": "deploy-keys", "data": {"TOKEN": "s3cret"}}]})

    name: str | None = Field(default=None, description="Lowercase letters, digits, dashes (POST).",
                             json_schema_extra=_NAME)
    data: dict[str, str] = Field(description="KEY -> value; write-only.", min_length=1,
                                 json_schema_extra={"propertyNames": shape(SECRET_KEY_PATTERN)})


class SecretCreate(SecretIn):
    """The body of POST on a project's secrets."""

    name: str = Field(description="Lowercase letters, digits, dashes.", json_schema_extra=_NAME)


class ProjectSecret(Resource):
    projectId: str
    name: str
    keys: list[str] = Field(description="The secret's keys (its values are never shown).")


class RegistryLoginIn(BaseModel):
    """One registry's login in a docker credential's body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    username: str = Field(min_length=1, max_length=1024)
    password: str | None = Field(default=None, description="Write-only; left out on PUT, "
                                 "the stored password is kept.", min_length=1, max_length=1024)


class DockerCredentialIn(BaseModel):
    """The body of POST/PUT on a project's docker credentials (Rancher's shape)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(default=None, description="Lowercase letters, digits, dashes (POST).",
                             json_schema_extra=_NAME)
    registries: dict[str, RegistryLoginIn] = Field(
        description="Registry host (`reg.example.com:5000`, `docker.io`) -> login.",
        min_length=1, json_schema_extra=_REGISTRY_KEY)


class RegistryLoginCreate(RegistryLoginIn):
    """One registry's login in a new docker credential."""

    password: str = Field(description="Write-only.", min_length=1, max_length=1024)


class DockerCredentialCreate(DockerCredentialIn):
    """The body of POST on a project's docker credentials."""

    name: str = Field(description="Lowercase letters, digits, dashes.", json_schema_extra=_NAME)
    registries: dict[str, RegistryLoginCreate] = Field(  # type: ignore[assignment]
        description="Registry host (`reg.example.com:5000`, `docker.io`) -> login.",
        min_length=1, json_schema_extra=_REGISTRY_KEY)


class RegistryLogin(BaseModel):
    username: str


class DockerCredential(Resource):
    projectId: str
    name: str
    registries: dict[str, RegistryLogin] = Field(
        description="Registry host -> username (passwords are never shown).")


class SlackConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str | None = Field(default=None, description="The incoming webhook URL (write-only).")
    defaultRecipient: str | None = Field(
        default=None, description="Shown only: a Slack webhook posts to its own channel.")


class SmtpConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    host: str | None = Field(default=None, description="The SMTP server.")
    port: Integer(1, 65535) | None = Field(default=None,  # type: ignore[valid-type]
                             description="Default 465 with tls, else 25; 587 means STARTTLS.")
    username: str | None = None
    password: str | None = Field(default=None, description="Write-only.")
    sender: str | None = Field(default=None, description="The From address.")
    tls: bool | None = Field(default=None, description="TLS (465: SMTPS, else STARTTLS).")
    defaultRecipient: str | None = Field(default=None, description="The address when a "
                                         "pipeline names none.")


class WebhookConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str | None = Field(default=None, description="Where the JSON payload is POSTed.")


class PagerdutyConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    serviceKey: str | None = Field(default=None, description="The integration (routing) key "
                                   "(write-only).")
    apiKey: str | None = Field(default=None, description="The REST API key (write-only).")


class MsteamsConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str | None = Field(default=None, description="The incoming webhook URL (write-only).")


class NotifierIn(BaseModel):
    """The body of POST/PUT on notifiers (Rancher's shape): exactly one of the configs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(default=None, description="Its name (required on POST).",
                             json_schema_extra=_TEXT)
    clusterId: str | None = Field(default=None, description="The cluster whose projects may "
                                  "name it (POST; default local).")
    slackConfig: SlackConfigIn | None = None
    smtpConfig: SmtpConfigIn | None = None
    webhookConfig: WebhookConfigIn | None = None
    pagerdutyConfig: PagerdutyConfigIn | None = None
    msteamsConfig: MsteamsConfigIn | None = None


class NotifierCreate(NotifierIn):
    """The body of POST on notifiers."""

    name: str = Field(description="Its name.", json_schema_extra=_TEXT)


class Notifier(Resource):
    clusterId: str
    name: str
    creatorId: str
    created: str
    slackConfig: dict[str, Any] | None = None
    smtpConfig: dict[str, Any] | None = None
    webhookConfig: dict[str, Any] | None = None
    pagerdutyConfig: dict[str, Any] | None = None
    msteamsConfig: dict[str, Any] | None = None


NotifierCollection = Collection[Notifier]
ClusterPipelineCollection = Collection[ClusterPipeline]
DockerCredentialCollection = Collection[DockerCredential]
ProjectSecretCollection = Collection[ProjectSecret]
ProjectCollection = Collection[Project]
ProjectRoleTemplateBindingCollection = Collection[ProjectRoleTemplateBinding]
SourceCodeCredentialCollection = Collection[SourceCodeCredential]
SourceCodeRepositoryCollection = Collection[SourceCodeRepository]
