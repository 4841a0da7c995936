"""Rancher's Norman envelope: resources with links and actions, collections, errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from prefect_pipelines.errors import InvalidInputError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Norman's filter modifiers beside eq, as query parameters `<field>_<modifier>=`.
MODIFIERS = ("ne", "prefix")


def base_url(request: Request) -> str:
    """The facade's URL as the caller reached it, without a trailing slash."""
    return str(request.base_url).rstrip("/")


def resource(self_url: str, type_: str, fields: dict[str, Any], *, actions: list[str] = (),  # type: ignore[assignment]
             links: dict[str, str] | None = None, editable: bool = True) -> dict[str, Any]:
    """A resource: its fields, `type`, `links` (self, update, remove, named) and `actions`."""
    all_links = {"self": self_url}
    if editable:
        all_links.update(update=self_url, remove=self_url)
    all_links.update(links or {})
    return {
        **fields,
        "type": type_,
        "links": all_links,
        "actions": {name: f"{self_url}?action={name}" for name in actions},
    }


def collection(request: Request, resource_type: str, data: list[dict[str, Any]], *,
               limit: int, offset: int, total: int | None,
               filters: tuple[str, ...] = (), sort: Sort | None = None) -> dict[str, Any]:
    """A page of resources with Norman's pagination (`marker` is the offset of a page),
    the `filters` it takes (with the values this request gave) and, for a sortable
    collection, `sort` (with the `reverse` link) and `sortLinks`."""
    next_url = None
    if total is not None and offset + len(data) < total or total is None and len(data) == limit:
        params = dict(request.query_params)
        params.update(limit=str(limit), marker=str(offset + limit))
        next_url = f"{base_url(request)}{request.url.path}?{urlencode(params)}"
    body: dict[str, Any] = {
        "type": "collection",
        "resourceType": resource_type,
        "data": data,
        "pagination": {"limit": limit, "total": total, "next": next_url,
                       "partial": next_url is not None},
        "links": {"self": str(request.url)},
    }
    if filters:
        given = request.query_params
        body["filters"] = {name: [
            {"modifier": modifier, "value": given[key]}
            for modifier, key in (("eq", name), *((mod, f"{name}_{mod}") for mod in MODIFIERS))
            if key in given] or None for name in filters}
    if sort is not None:
        def link(**change: str) -> str:
            params = {key: value for key, value in request.query_params.items() if key != "marker"}
            params.update(change)
            return f"{base_url(request)}{request.url.path}?{urlencode(params)}"

        body["sort"] = {"name": sort.field, "order": sort.order,
                        "reverse": link(sort=sort.field, order="desc" if sort.order == "asc" else "asc")}
        body["sortLinks"] = {name: link(sort=name, order="asc") for name in sort.fields}
    return body


class Sort:
    """Norman's `sort=<field>&order=asc|desc` of a collection that can sort by `fields`."""

    def __init__(self, fields: tuple[str, ...], field: str | None, order: str | None,
                 default_order: str = "asc") -> None:
        if field is not None and field not in fields:
            raise InvalidInputError(f"sort={field!r}: this collection sorts by "
                                    f"{', '.join(fields)}", field_name="sort")
        if order is not None and order not in ("asc", "desc"):
            raise InvalidInputError("order must be asc or desc", field_name="order")
        self.fields = fields
        self.field = field or fields[0]
        self.order = order or default_order

    @property
    def descending(self) -> bool:
        return self.order == "desc"


def page(limit: int | None, marker: str | None) -> tuple[int, int]:
    """(limit, offset) from Norman's `limit` and `marker` query parameters."""
    if limit is None:
        limit = DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"limit must be between 1 and {MAX_LIMIT}", field_name="limit")
    offset = 0
    if marker:
        if not marker.isdigit() or len(marker) > 9:
            raise InvalidInputError("marker must be the offset from a `next` link",
                                    field_name="marker")
        offset = int(marker)
    return limit, offset


def error_body(status: int, code: str, message: str, field_name: str | None = None
               ) -> dict[str, Any]:
    """Norman's error shape."""
    body: dict[str, Any] = {"type": "error", "status": status, "code": code, "message": message}
    if field_name:
        body["fieldName"] = field_name
    return body
