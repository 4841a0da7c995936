"""The `Forge` interface: what prefect-pipelines asks of a Git host, and the shapes it answers in.

Every forge (GitHub, GitLab, ...) is one module of this package with one `Forge` subclass,
listed in the registry (`forges/__init__.py`). services/ and api/ speak to `Forge` only.

A forge is made for one host (`Forge(api_url)`) and holds no token: every call that acts
for a user takes the user's token. The calls that reach the forge are async; each runs its
(synchronous) client library in a worker thread.

Error handling: a forge raises the API's errors only, never its library's, and never puts a
token or a secret in a message:
- `InvalidInputError`: the forge refused what the caller gave (a code, credentials);
- `NotFoundError`: the forge has no such object (or the token may not see it);
- `UpstreamError`: the forge answered 5xx, rate-limited, or could not be reached.

Thread safety: a forge keeps no state between calls; one instance may serve many at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlencode, urlsplit

import anyio
import httpx

from prefect_pipelines.errors import InvalidInputError, NotFoundError, SignatureError, UpstreamError

T = TypeVar("T")
_log = logging.getLogger(__name__)
TIMEOUT = 15
_COMMIT = re.compile(r"[0-9a-fA-F]{7,64}")
_SKIP_CI = re.compile(r"\[(?:skip ci|ci skip)\]", re.IGNORECASE)
_OWNER_REPO = re.compile(r"^/?(.+?)/([^/]+?)(?:\.git)?/?$")
EVENTS = ("push", "tag", "pull_request")


@dataclass(frozen=True)
class OAuthApp:
    """A cluster's OAuth app on a forge: where it lives and its credentials."""

    host: str
    tls: bool
    client_id: str
    client_secret: str = field(repr=False)
    redirect_url: str = ""
    api_url: str = ""  # set only where the API is not found from the host (Bitbucket Cloud)


@dataclass(frozen=True)
class Token:
    """What an OAuth exchange or refresh gives: the access token, the refresh token and
    when the access token expires (epoch seconds; None: it does not)."""

    access: str = field(repr=False)
    refresh: str = field(default="", repr=False)
    expires_at: float | None = None

    def expires_within(self, seconds: float) -> bool:
        return self.expires_at is not None and self.expires_at - time.time() < seconds


@dataclass(frozen=True)
class ForgeUser:
    """An account as the credential resource shows it."""

    login: str
    name: str
    avatar_url: str
    html_url: str


@dataclass(frozen=True)
class Repository:
    """A repository the user can see, in the /v3 shape's terms."""

    full_name: str
    url: str  # the https clone URL
    html_url: str
    pull: bool
    push: bool
    admin: bool
    language: str = ""
    default_branch: str = ""

    def fields(self) -> dict[str, Any]:
        return {"fullName": self.full_name, "url": self.url, "htmlUrl": self.html_url,
                "permissions": {"pull": self.pull, "push": self.push, "admin": self.admin},
                "language": self.language, "defaultBranch": self.default_branch}


@dataclass
class Delivery:
    """What a webhook delivery asks to build, whichever forge sent it."""

    event: str  # push, tag or pull_request
    branch: str  # the branch pushed, the tag, or a pull request's target branch
    commit: str
    ref: str
    message: str = ""
    author: str = ""
    html_link: str = ""
    email: str = ""
    avatar_url: str = ""
    title: str = ""  # a pull request's
    skip_ci: str = ""  # `[skip ci]` or `[ci skip]`, when the commit message (or title) says it

    def trigger(self) -> dict[str, Any]:
        """The run's `trigger` parameter."""
        return {"triggeredBy": "webhook", "event": self.event, "commit": self.commit,
                "ref": self.ref, "message": self.message, "author": self.author,
                "htmlLink": self.html_link, "email": self.email, "avatarUrl": self.avatar_url,
                "title": self.title}


class Skip(Exception):
    """A valid delivery that runs nothing (answered 200 with the reason)."""


@dataclass(frozen=True)
class DeliveryHeaders:
    """The headers a forge's deliveries carry: the event's name and the delivery's id
    (and the names a fork of the forge may use instead: Forgejo's for Gitea's)."""

    event: str
    delivery: str
    event_alias: str = ""
    delivery_alias: str = ""


class Forge(ABC):
    """A Git host. Subclasses set the class attributes and implement every method."""

    kind: ClassVar[str]  # the `kind` of credentials and repositories, e.g. "gitlab"
    title: ClassVar[str]  # how messages name it, e.g. "GitLab"
    config_field: ClassVar[str]  # the cluster pipeline's field, e.g. "gitlabConfig"
    # where the forge is, in its config: a host and tls, or (Bitbucket Cloud) an apiUrl
    config_keys: ClassVar[tuple[str, ...]] = ("host", "tls")
    default_host: ClassVar[str]
    token_expires: ClassVar[bool]  # whether its OAuth tokens expire (and are refreshed)
    headers: ClassVar[DeliveryHeaders]
    status_states: ClassVar[Mapping[str, str]] = {
        "pending": "pending", "success": "success", "failure": "failure", "error": "error"}

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url.rstrip("/")

    # -- where it is --------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def api_url_of(cls, app: OAuthApp) -> str:
        """The API base URL of the host an app lives on."""

    @property
    def web_host(self) -> str:
        """The host its clone and web URLs are on (`host:port`)."""
        return urlsplit(self.api_url).netloc

    def repo_name(self, url: str) -> str | None:
        """`owner/repo` (GitLab: `group/sub/repo`) of a clone URL on this host, None for
        other hosts."""
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        if not parts.scheme or host.lower() != self.web_host.lower():
            return None
        match = _OWNER_REPO.search(parts.path)
        return f"{match.group(1)}/{match.group(2)}" if match else None

    # -- OAuth and the user -------------------------------------------------------------

    authorize_params: ClassVar[Mapping[str, str]] = {"response_type": "code"}  # and the scopes

    @property
    @abstractmethod
    def authorize_endpoint(self) -> str:
        """The forge's OAuth authorize page."""

    def authorize_url(self, app: OAuthApp, state: str = "") -> str:
        """Where a user's browser goes to grant the app access (with the scopes it needs)."""
        query = {"client_id": app.client_id, **self.authorize_params}
        if app.redirect_url:
            query["redirect_uri"] = app.redirect_url
        if state:
            query["state"] = state
        return f"{self.authorize_endpoint}?{urlencode(query)}"

    @abstractmethod
    async def exchange_code(self, app: OAuthApp, code: str) -> Token:
        """Trade an OAuth code for a token.

        Raises:
            InvalidInputError: the code (field `code`) or the app's credentials
                (`<configField>.clientSecret`) were refused, or the host cannot be reached
                (`<configField>.host`).
        """

    async def refresh(self, app: OAuthApp, token: Token) -> Token:
        """A new token for one that expires.

        Raises:
            InvalidInputError: the forge refused the refresh token (the user must link again).
        """
        raise InvalidInputError(f"{self.title} tokens are not refreshed")

    async def user(self, token: str) -> ForgeUser:
        """The account a token belongs to."""
        return await self.call(lambda: self.account(token), "reading the user")

    @abstractmethod
    def account(self, token: str) -> ForgeUser:
        """The account a token belongs to (blocking)."""

    async def repositories(self, token: str) -> list[Repository]:
        """Every repository the token's user can see (every page)."""
        return await self.call(lambda: self.repository_list(token), "listing repositories")

    @abstractmethod
    def repository_list(self, token: str) -> list[Repository]:
        """Every repository the token's user can see (blocking)."""

    # -- hooks and deliveries -----------------------------------------------------------

    async def create_hook(self, token: str, repo: str, *, url: str, secret: str,
                          events: frozenset[str]) -> str:
        """Create a hook posting `events` (of EVENTS) to `url` with `secret`; its id."""
        return await self.call(lambda: self.add_hook(token, repo, url=url, secret=secret, events=events),
                               f"creating a webhook on {repo}")

    @abstractmethod
    def add_hook(self, token: str, repo: str, *, url: str, secret: str, events: frozenset[str]) -> str:
        """Create a hook (blocking); its id."""

    async def find_hooks(self, token: str, repo: str, url: str) -> list[str]:
        """The ids of the repository's hooks that post to `url` (every page)."""
        found = await self.call(lambda: self.hooks_of(token, repo), f"listing the webhooks of {repo}")
        return [hook_id for hook_id, hook_url in found if hook_url == url]

    @abstractmethod
    def hooks_of(self, token: str, repo: str) -> list[tuple[str, str]]:
        """(id, URL) of every hook of the repository (blocking)."""

    async def delete_hook(self, token: str, repo: str, hook_id: str) -> None:
        """Delete a hook (one already gone is fine)."""
        try:
            await self.call(lambda: self.remove_hook(token, repo, hook_id),
                            f"deleting webhook {hook_id} of {repo}")
        except NotFoundError:
            pass

    @abstractmethod
    def remove_hook(self, token: str, repo: str, hook_id: str) -> None:
        """Delete a hook (blocking; the library's not-found error when it is gone)."""

    @abstractmethod
    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        """Check the delivery was made with the hook's secret, in constant time.

        Raises:
            SignatureError: it was not.
        """

    # event header value -> the name of the method that parses its payload
    event_parsers: ClassVar[Mapping[str, str]]

    def parse(self, event: str, payload: dict[str, Any]) -> Delivery:
        """What a delivery of `event` (its event header) asks to build.

        Raises:
            Skip: it runs nothing (a ping, a deleted branch, a closed pull request, an
                event it does not build, ...).
            InvalidInputError: it is not the event's payload (naming the field).
        """
        method = self.event_parsers.get(event)
        if method is None:
            raise Skip(f"event {event!r} runs nothing")
        return getattr(self, method)(payload)

    pull_request_actions: ClassVar[frozenset[str]] = frozenset()

    def _pull_request(self, payload: dict[str, Any]) -> Delivery:
        """A `pull_request` payload in GitHub's shape (Gitea copies it)."""
        return pull_request(payload, self.pull_request_actions)

    def delivery(self, headers: Mapping[str, str], body: bytes) -> tuple[str, Delivery]:
        """(delivery id, what it asks to build) of a verified delivery."""
        event = headers.get(self.headers.event) or headers.get(self.headers.event_alias)
        if not event:
            raise InvalidInputError(f"the delivery has no {self.headers.event} header",
                                    field_name=self.headers.event)
        delivery = self.parse(event, json_object(body))
        delivery_id = headers.get(self.headers.delivery) or headers.get(self.headers.delivery_alias) or ""
        if not delivery_id:
            raise InvalidInputError(f"the delivery has no {self.headers.delivery} header",
                                    field_name=self.headers.delivery)
        return delivery_id, delivery

    # -- commit status, contents, clone ---------------------------------------------------

    @abstractmethod
    def set_status(self, token: str, repo: str, sha: str, *, state: str, target_url: str,
                   description: str, context: str) -> None:
        """Set a commit's status (pending, success, failure, error). Synchronous: the
        flow calls it from its own thread."""

    async def branches(self, token: str, repo: str) -> list[str]:
        """The repository's branches (every page)."""
        return await self.call(lambda: self.branch_names(token, repo), f"listing the branches of {repo}")

    @abstractmethod
    def branch_names(self, token: str, repo: str) -> list[str]:
        """The repository's branches (blocking)."""

    async def branch_head(self, token: str, repo: str, branch: str) -> str:
        """The commit at the head of a branch (NotFoundError: no such branch)."""
        return await self.call(lambda: self.head_of(token, repo, branch),
                               f"reading branch {branch!r} of {repo}")

    @abstractmethod
    def head_of(self, token: str, repo: str, branch: str) -> str:
        """The commit at the head of a branch (blocking)."""

    async def read_file(self, token: str, repo: str, path: str, ref: str) -> bytes | None:
        """A file's content at a commit or branch; None when there is no such file."""
        return await self.call(lambda: self.file_or_none(token, repo, path, ref),
                               f"reading {path} of {repo} at {ref}")

    @abstractmethod
    def file_content(self, token: str, repo: str, path: str, ref: str) -> bytes | None:
        """A file's content (blocking; the library's not-found error, or None for a path
        that is not a file)."""

    async def commit_file(self, token: str, repo: str, *, path: str, content: bytes,
                          branch: str, message: str) -> str:
        """Create or update a file on a branch; the new commit."""
        return await self.call(
            lambda: self.write_file(token, repo, path=path, content=content, branch=branch, message=message),
            f"committing {path} to {repo} ({branch})")

    @abstractmethod
    def write_file(self, token: str, repo: str, *, path: str, content: bytes, branch: str,
                   message: str) -> str:
        """Create or update a file on a branch (blocking); the new commit."""

    def file_or_none(self, token: str, repo: str, path: str, ref: str) -> bytes | None:
        """A file's content, or None when the forge has no such file (blocking; what is
        "not found" is the forge's own `failure` mapping)."""
        try:
            return self.file_content(token, repo, path, ref)
        except Exception as exc:
            if isinstance(self.failure(exc, ""), NotFoundError):
                return None
            raise

    @abstractmethod
    def clone_header(self, token: str) -> str:
        """The `Authorization` header git sends to clone with a token (the token goes
        nowhere else: not on a command line, in a URL, a log or a parameter)."""

    # -- shared by the forges -------------------------------------------------------------

    async def call(self, fn: Callable[[], T], what: str) -> T:
        """Run a blocking client call in a thread, its failures turned into API errors by
        the forge's `failure`."""
        try:
            return await anyio.to_thread.run_sync(fn)
        except Exception as exc:  # noqa: BLE001 - each forge maps its library's errors
            raise self.failure(exc, what) from None

    @abstractmethod
    def failure(self, exc: Exception, what: str) -> Exception:
        """The API error for a failure of the client library while doing `what`."""

    def unreachable(self, exc: Exception, what: str) -> UpstreamError:
        return UpstreamError(f"cannot reach {self.title} at {self.web_host} while {what} "
                             f"({type(exc).__name__})")


class OAuth2Forge(Forge):
    """A forge whose OAuth 2 tokens expire and are refreshed, both grants a form POST to
    `token_path` of its web host (GitLab, Gitea). Written with httpx: the forges' client
    libraries take a token but have no OAuth flow."""

    token_expires = True
    token_path: ClassVar[str]
    client_auth_basic: ClassVar[bool] = False  # the app's credentials as Basic auth, not form fields
    _CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})

    def token_url(self) -> str:
        return f"{self.api_url}{self.token_path}"

    async def _token(self, app: OAuthApp, grant: dict[str, str], what: str) -> Token:
        data = dict(grant)
        auth = None
        if self.client_auth_basic:
            auth = httpx.BasicAuth(app.client_id, app.client_secret)
        else:
            data.update(client_id=app.client_id, client_secret=app.client_secret)
        if app.redirect_url:
            data["redirect_uri"] = app.redirect_url
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                response = await http.post(self.token_url(), data=data, auth=auth,
                                           headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            where = " and ".join(self.config_keys)
            raise InvalidInputError(f"{self.unreachable(exc, what).message}: check {where}",
                                    field_name=f"{self.config_field}.{self.config_keys[0]}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        if response.status_code >= 500 or response.status_code == 429:
            raise UpstreamError(f"{self.title} answered {response.status_code} while {what}")
        if answer.get("error") in self._CLIENT_ERRORS:
            raise InvalidInputError(f"{self.title} refused the OAuth app's clientId or clientSecret",
                                    field_name=f"{self.config_field}.clientSecret")
        access = answer.get("access_token")
        if response.status_code != 200 or not isinstance(access, str) or not access:
            raise InvalidInputError(
                f"{self.title} refused the {grant['grant_type'].replace('_', ' ')}: "
                f"{answer.get('error_description') or answer.get('error') or response.status_code}",
                field_name="code")
        return Token(access, str(answer.get("refresh_token") or ""),
                     expires_at(answer.get("expires_in")))

    async def exchange_code(self, app: OAuthApp, code: str) -> Token:
        try:
            return await self._token(app, {"grant_type": "authorization_code", "code": code},
                                     "exchanging the OAuth code")
        except InvalidInputError as exc:
            if exc.field_name == "code":
                raise InvalidInputError(f"{self.title} refused the code: it is wrong, expired or "
                                        "already used", field_name="code") from None
            raise

    async def refresh(self, app: OAuthApp, token: Token) -> Token:
        if not token.refresh:
            raise InvalidInputError(f"{self.title} gave no refresh token for this link")
        return await self._token(app, {"grant_type": "refresh_token", "refresh_token": token.refresh},
                                 "refreshing the token")


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def check_hmac(secret: str, body: bytes, given: str | None, *, header: str, prefix: str = "",
               digest: str = "sha256") -> None:
    """`given` is `prefix` + the hex HMAC of the body with the secret (constant time)."""
    if not given or not given.startswith(prefix):
        raise SignatureError(f"the delivery has no {header} signature")
    expected = hmac.new(secret.encode(), body, getattr(hashlib, digest)).hexdigest()
    if not hmac.compare_digest(expected, given[len(prefix):].strip().lower()):
        raise SignatureError(f"the delivery's {header} does not match the pipeline's secret")


def check_hub_signature(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """`X-Hub-Signature: sha256=<hex HMAC-SHA256>` (Bitbucket Cloud's and Data Center's)."""
    check_hmac(secret, body, headers.get("x-hub-signature"), header="X-Hub-Signature", prefix="sha256=")


def clone_href(links: Any, name: str) -> str:
    """The clone URL named `name` (http, https) of a repository's links, without the user
    name Bitbucket puts in it."""
    clones = links.get("clone") if isinstance(links, dict) else None
    url = next((text(c, "href") for c in clones or [] if text(c, "name") == name), "")
    if not url:
        return ""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()


def check_token(secret: str, given: str | None, *, header: str) -> None:
    """The delivery carries the secret itself (GitLab), compared in constant time."""
    if not given:
        raise SignatureError(f"the delivery has no {header} token")
    if not hmac.compare_digest(secret.encode(), given.encode()):
        raise SignatureError(f"the delivery's {header} does not match the pipeline's secret")


def json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidInputError("the delivery is not JSON", code="InvalidBodyContent") from None
    if not isinstance(payload, dict):
        raise InvalidInputError("the delivery is not a JSON object", code="InvalidBodyContent")
    return payload


def text(payload: Any, *path: str | int) -> str:
    """The string at a path of a payload, or ''."""
    value: Any = payload
    for key in path:
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and -len(value) <= key < len(value) else None
        else:
            value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""


def commit_at(payload: Any, *path: str | int) -> str:
    """A commit hash of the payload (a 422 naming the field when it is not one)."""
    commit = text(payload, *path)
    if not _COMMIT.fullmatch(commit):
        name = ".".join(str(p) for p in path)
        raise InvalidInputError(f"{name} is not a commit hash", field_name=name)
    return commit


def is_zero_commit(commit: str) -> bool:
    return bool(commit) and set(commit) == {"0"}


def skip_ci(message: str) -> str:
    """The marker a commit message carries to be left unbuilt, as Woodpecker and GitHub
    Actions read it (any case)."""
    found = _SKIP_CI.search(message)
    return found.group(0) if found else ""


def first_line(message: str) -> str:
    return message.split("\n", 1)[0]


def branch_or_tag(ref: str) -> tuple[str, str]:
    """(event, name) of a pushed ref: `refs/tags/v1` -> (tag, v1), `refs/heads/x` -> (push, x)."""
    if ref.startswith("refs/tags/"):
        return "tag", ref[len("refs/tags/"):]
    if ref.startswith("refs/heads/"):
        return "push", ref[len("refs/heads/"):]
    raise InvalidInputError(f"push of an unexpected ref {ref!r}", field_name="ref")


def pull_request(payload: dict[str, Any], actions: frozenset[str]) -> Delivery:
    """A `pull_request` delivery in GitHub's shape (Gitea's copies it): its head commit,
    into its base branch, when it was opened or got new commits (`actions`)."""
    action = text(payload, "action")
    pull = payload.get("pull_request") if isinstance(payload.get("pull_request"), dict) else {}
    if action not in actions or pull.get("state") != "open":
        raise Skip(f"pull request {action or 'event'}: nothing to build")
    number = pull.get("number") or payload.get("number")
    if not isinstance(number, int):
        raise InvalidInputError("the pull request has no number", field_name="number")
    title = text(pull, "title")
    return Delivery(event="pull_request", branch=text(pull, "base", "ref"),
                    commit=commit_at(pull, "head", "sha"), ref=f"refs/pull/{number}/head",
                    message=title, title=title, author=text(pull, "user", "login"),
                    html_link=text(pull, "html_url"), avatar_url=text(pull, "user", "avatar_url"),
                    skip_ci=skip_ci(title))


def expires_at(seconds: Any) -> float | None:
    """Epoch seconds of an OAuth answer's `expires_in` (None when it has none)."""
    return time.time() + float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else None
