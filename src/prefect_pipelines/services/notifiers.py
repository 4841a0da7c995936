"""Notifiers (Rancher's `/v3/notifiers`): who a pipeline's notifications go through.

Each notifier is two block documents named `notifier--<cluster>--<n-id>`: a
`PipelinesNotifier` record (its name, cluster, kind and the settings that are not
secret) and the block that sends, one of Prefect's own notification blocks (Slack
webhook, Microsoft Teams webhook, PagerDuty, custom webhook) or, for email,
prefect-email's `EmailServerCredentials` (Prefect has no SMTP notification block). The
sending block holds the secrets; operators see and can test it in the Prefect UI.
Admins make notifiers; the projects of the cluster name them in their pipelines.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
import smtplib
import string
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from prefect.blocks.fields import SecretDict
from prefect.blocks.notifications import (
    CustomWebhookNotificationBlock,
    MicrosoftTeamsWebhook,
    PagerDutyWebHook,
    SlackWebhook,
)
from prefect.exceptions import ObjectNotFound
from prefect_email import EmailServerCredentials
from prefect_email.credentials import SMTPType

from prefect_pipelines.blocks import PipelinesNotifier
from prefect_pipelines.errors import InvalidInputError, NotFoundError
from prefect_pipelines.services.documents import find_documents
from prefect_pipelines.translator.notices import Notice
from prefect_pipelines.translator.spec import Notification, is_notifier_id

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

KINDS = ("slack", "smtp", "webhook", "pagerduty", "msteams")
# The field of each kind's settings on the API, and which of its keys are secret (written,
# never shown).
CONFIG_FIELDS = {kind: f"{kind}Config" for kind in KINDS}
SECRET_KEYS = {"slack": ("url",), "msteams": ("url",), "pagerduty": ("serviceKey", "apiKey"),
               "smtp": ("password",), "webhook": ()}
_ID_CHARS = string.ascii_lowercase + string.digits
_EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+")
# The payload of a webhook notifier made here: the text, and every detail as its own field.
WEBHOOK_VALUES = ("recipient", "pipeline", "execution", "run", "state", "branch", "ref",
                  "commit", "author", "duration", "url", "message")
WEBHOOK_PAYLOAD = {"subject": "{{subject}}", "text": "{{body}}",
                   **{name: "{{" + name + "}}" for name in WEBHOOK_VALUES}}


@dataclass
class NotifierInfo:
    """A notifier as the API shows it (its secrets left out)."""

    id: str
    cluster_id: str
    name: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    creator_id: str = ""
    created: str = ""

    @property
    def default_recipient(self) -> str:
        return str(self.config.get("defaultRecipient") or "")


def record_name(notifier_id: str) -> str:
    cluster, _, local = notifier_id.partition(":")
    return f"notifier--{cluster}--{local}"


def _info(data: dict[str, Any]) -> NotifierInfo:
    return NotifierInfo(id=data["notifier_id"], cluster_id=data["cluster_id"], name=data["name"],
                        kind=data["kind"], config=dict(data.get("config") or {}),
                        creator_id=data.get("creator_id") or "", created=data.get("created") or "")


async def list_notifiers(client: PrefectClient, cluster_id: str | None = None) -> list[NotifierInfo]:
    """Every notifier (of `cluster_id`, when given), by id."""
    prefix = f"notifier--{cluster_id}--" if cluster_id else "notifier--"
    documents = await find_documents(client, PipelinesNotifier, prefix, include_secrets=False)
    found = [_info(doc["data"]) for doc in documents if doc["name"].startswith(prefix)]
    return sorted(found, key=lambda info: info.id)


async def read_notifier(client: PrefectClient, notifier_id: str) -> NotifierInfo:
    """One notifier.

    Raises:
        NotFoundError: there is none of that id.
    """
    record = await _record(client, notifier_id)
    return _info(record.model_dump())


async def _record(client: PrefectClient, notifier_id: str) -> PipelinesNotifier:
    if not is_notifier_id(notifier_id):
        raise NotFoundError(f"notifier {notifier_id!r} not found")
    try:
        record = await PipelinesNotifier.aload(record_name(notifier_id), client=client)
    except (ValueError, ObjectNotFound):
        raise NotFoundError(f"notifier {notifier_id!r} not found") from None
    if record.notifier_id != notifier_id:  # pragma: no cover - the name holds it
        raise NotFoundError(f"notifier {notifier_id!r} not found")
    return record


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def create_notifier(client: PrefectClient, *, cluster_id: str, name: str, kind: str,
                          config: dict[str, Any], creator_id: str) -> NotifierInfo:
    """A new notifier `<cluster>:n-xxxxx` (its sending block first, then its record)."""
    sender = sender_block(kind, config, name)
    for _ in range(20):
        notifier_id = f"{cluster_id}:n-{''.join(secrets.choice(_ID_CHARS) for _ in range(5))}"
        try:
            await PipelinesNotifier.aload(record_name(notifier_id), client=client)
        except (ValueError, ObjectNotFound):
            break
    else:  # pragma: no cover - 36^5 ids
        raise InvalidInputError("no free notifier id; try again")
    name_of_block = record_name(notifier_id)
    await sender.asave(name_of_block, client=client, overwrite=True)
    record = PipelinesNotifier(
        notifier_id=notifier_id, cluster_id=cluster_id, name=name, kind=kind,
        sender_block=f"{sender.get_block_type_slug()}/{name_of_block}",
        config=shown_config(kind, config), creator_id=creator_id, created=_now())
    await record.asave(name_of_block, client=client)
    return _info(record.model_dump())


async def update_notifier(client: PrefectClient, notifier_id: str, *, name: str | None,
                          kind: str, config: dict[str, Any]) -> NotifierInfo:
    """Replace a notifier's settings (a secret left out keeps the stored one; its kind
    may change)."""
    record = await _record(client, notifier_id)
    if kind == record.kind:
        stored = await load_sender(client, record)
        config = {**_secrets_of(kind, stored), **{k: v for k, v in config.items() if v is not None}}
    sender = sender_block(kind, config, name or record.name)
    block_name = record_name(notifier_id)
    await sender.asave(block_name, client=client, overwrite=True)
    if kind != record.kind:
        await _delete_document(client, record.sender_block)
    record.name = name or record.name
    record.kind = kind
    record.sender_block = f"{sender.get_block_type_slug()}/{block_name}"
    record.config = shown_config(kind, config)
    await record.asave(block_name, client=client, overwrite=True)
    return _info(record.model_dump())


async def delete_notifier(client: PrefectClient, notifier_id: str) -> None:
    """Delete a notifier (pipelines that name it then send nothing through it, and say so
    on the execution)."""
    record = await _record(client, notifier_id)
    await _delete_document(client, f"{PipelinesNotifier.get_block_type_slug()}/{record_name(notifier_id)}")
    await _delete_document(client, record.sender_block)


async def _delete_document(client: PrefectClient, slug_and_name: str) -> None:
    slug, _, name = slug_and_name.partition("/")
    try:
        document = await client.read_block_document_by_name(name, slug, include_secrets=False)
        await client.delete_block_document(document.id)
    except ObjectNotFound:
        pass


_SENDERS: dict[str, type[Block]] = {
    "slack": SlackWebhook, "msteams": MicrosoftTeamsWebhook, "pagerduty": PagerDutyWebHook,
    "webhook": CustomWebhookNotificationBlock, "smtp": EmailServerCredentials}


async def load_sender(client: PrefectClient, record: PipelinesNotifier) -> Block:
    """The block that sends for a notifier, with its secrets."""
    return await _SENDERS[record.kind].aload(record.sender_block.partition("/")[2], client=client)


def _secrets_of(kind: str, sender: Block) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, attr in _SECRET_ATTRS[kind].items():
        value = getattr(sender, attr, None)
        if value is not None:
            values[key] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return values


_SECRET_ATTRS = {"slack": {"url": "url"}, "msteams": {"url": "url"},
                 "pagerduty": {"serviceKey": "integration_key", "apiKey": "api_key"},
                 "smtp": {"password": "password"}, "webhook": {}}


def shown_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """A kind's settings without their secrets: what the record keeps and the API shows."""
    return {key: value for key, value in config.items()
            if key not in SECRET_KEYS[kind] and value is not None}


def _url(value: Any, where: str, *, schemes: tuple[str, ...] = ("https", "http")) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError("is required", field_name=where, code="MissingRequired")
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise InvalidInputError(f"must be an {' or '.join(schemes)} URL", field_name=where)
    return value


def _apprise_accepts(url: str, where: str, what: str) -> None:
    from apprise import Apprise

    if not Apprise().add(url):
        raise InvalidInputError(f"is not a {what} URL", field_name=where)


def sender_block(kind: str, config: dict[str, Any], name: str) -> Block:
    """The Prefect block that sends for a notifier of `kind` with `config` (its API
    settings, secrets included).

    Raises:
        InvalidInputError: a setting is missing or wrong, naming it (`slackConfig.url`).
    """
    where = CONFIG_FIELDS[kind]
    if kind == "slack":
        url = _url(config.get("url"), f"{where}.url", schemes=("https",))
        _apprise_accepts(url, f"{where}.url", "Slack incoming webhook")
        return SlackWebhook(url=url)
    if kind == "msteams":
        url = _url(config.get("url"), f"{where}.url", schemes=("https",))
        _apprise_accepts(url, f"{where}.url", "Microsoft Teams webhook")
        return MicrosoftTeamsWebhook(url=url)
    if kind == "pagerduty":
        for key in ("serviceKey", "apiKey"):
            if not config.get(key):
                raise InvalidInputError("is required", field_name=f"{where}.{key}",
                                        code="MissingRequired")
        return PagerDutyWebHook(integration_key=config["serviceKey"], api_key=config["apiKey"])
    if kind == "webhook":
        return CustomWebhookNotificationBlock(name=name, url=_url(config.get("url"), f"{where}.url"),
                                              json_data=dict(WEBHOOK_PAYLOAD), timeout=10,
                                              secrets={name: "" for name in WEBHOOK_VALUES})
    assert kind == "smtp"
    host = config.get("host")
    if not host:
        raise InvalidInputError("is required", field_name=f"{where}.host", code="MissingRequired")
    sender = config.get("sender")
    if not sender or not _EMAIL.fullmatch(str(sender)):
        raise InvalidInputError("must be an email address", field_name=f"{where}.sender")
    port = int(config.get("port") or (465 if config.get("tls") else 25))
    smtp_type = (SMTPType.INSECURE if not config.get("tls")
                 else SMTPType.SSL if port == 465 else SMTPType.STARTTLS)
    return EmailServerCredentials(username=config.get("username") or None,
                                  password=config.get("password") or "", smtp_server=host,
                                  smtp_type=smtp_type, smtp_port=port)


def check_recipient(info: NotifierInfo, recipient: str | None, where: str) -> None:
    """A recipient fits its notifier: an email notifier needs an address (the
    pipeline's, or the notifier's default).

    Raises:
        InvalidInputError: naming `where`.
    """
    if info.kind == "smtp":
        address = recipient or info.default_recipient
        if not address or not _EMAIL.fullmatch(address):
            raise InvalidInputError(
                f"notifier {info.id} sends email: give an email address (it has no "
                "defaultRecipient)" if not address else f"{address!r} is not an email address",
                field_name=f"{where}.recipient")


async def check_notification(client: PrefectClient, project_id: str,
                             notification: Notification | None) -> None:
    """Every notifier a pipeline names exists in its project's cluster, and each
    recipient fits its notifier: a 422 naming the field otherwise."""
    if notification is None:
        return
    cluster = project_id.partition(":")[0]
    for index, item in enumerate(notification.recipients):
        where = f"notification.recipients[{index}]"
        try:
            info = await read_notifier(client, item.notifier)
        except NotFoundError:
            info = None
        if info is None or info.cluster_id != cluster:
            raise InvalidInputError(f"cluster {cluster} has no notifier {item.notifier!r}",
                                    field_name=f"{where}.notifier")
        check_recipient(info, item.recipient, where)


async def send(client: PrefectClient, notifier_id: str, recipient: str | None, notice: Notice,
               *, cluster_id: str, timeout: float) -> str:
    """Send one notification through a notifier of `cluster_id` (a repository's file
    names its notifiers unchecked until now); what it went to.

    Raises:
        NotFoundError: the cluster has no such notifier (any more).
        InvalidInputError: the recipient does not fit it (an email notifier's).
        Exception: whatever the notifier's service answered (unreachable, refused, 5xx),
            or TimeoutError after `timeout` seconds.
    """
    record = await _record(client, notifier_id)
    if record.cluster_id != cluster_id:
        raise NotFoundError(f"cluster {cluster_id} has no notifier {notifier_id!r}")
    check_recipient(_info(record.model_dump()), recipient, "recipient")
    sender = await load_sender(client, record)
    try:
        return await _send(sender, _info(record.model_dump()), recipient, notice, timeout)
    except TimeoutError:
        raise
    except Exception as exc:
        # What a service answers may quote the URL or key it was called with.
        text = f"{type(exc).__name__}: {exc}"
        for value in _secrets_of(record.kind, sender).values():
            if isinstance(value, str) and value:
                text = text.replace(value, "********")
        raise NotifierFailed(text[:300]) from None


class NotifierFailed(RuntimeError):
    """A notifier's service did not take a notification (its secrets left out)."""


async def _send(sender: Block, info: NotifierInfo, recipient: str | None, notice: Notice,
                timeout: float) -> str:
    to = recipient or info.default_recipient
    if isinstance(sender, EmailServerCredentials):
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = (
            notice.subject, str(info.config.get("sender")), to)
        message.set_content(notice.body)
        await asyncio.wait_for(asyncio.to_thread(_send_mail, sender, message, timeout), timeout)
        return to
    if isinstance(sender, CustomWebhookNotificationBlock):
        # The details travel as the block's values, never as templates: a commit's
        # subject with `{{...}}` in it stays text.
        values = {**sender.secrets.get_secret_value(), **notice.details, "recipient": to}
        sender = sender.model_copy(update={"secrets": SecretDict(values)})
    await asyncio.wait_for(sender.anotify(notice.body, notice.subject), timeout)
    return to or info.name


def _send_mail(credentials: EmailServerCredentials, message: EmailMessage, timeout: float) -> None:
    server = credentials.get_server()
    try:
        server.timeout = timeout
        if server.sock is not None:
            server.sock.settimeout(timeout)
        server.send_message(message)
    finally:
        try:
            server.quit()
        except smtplib.SMTPException:
            pass
