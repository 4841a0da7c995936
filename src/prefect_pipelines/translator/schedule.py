"""Cron triggers: validation and fire times, computed the way Prefect's scheduler does.

Fire times come from Prefect's own `CronSchedule` (the server schema the scheduler uses),
through its public `get_dates`, so `nextStart` on the API is the time Prefect will really
fire, DST rules included (the croniter package, unlike Prefect, fires in the hour that
clocks skip and twice in the hour they repeat: tests/translator/test_schedule.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from prefect_pipelines.translator.errors import (
    CronExpressionError,
    CronTimezoneError,
    CronTooFrequentError,
)

MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
# How many consecutive fire times are compared to find the shortest gap. Enough to cover
# a leap day's pair of fires in an expression like "0,1 0 29 2 *".
_GAP_SAMPLES = 600


def validate_timezone(timezone: str) -> str:
    """Check that `timezone` is an IANA timezone name.

    Raises:
        CronTimezoneError: it is not.
    """
    if timezone not in _timezones():
        raise CronTimezoneError(
            f"{timezone!r} is not a known IANA timezone (e.g. Europe/Berlin, UTC)"
        ).at("triggerCronTimezone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):  # pragma: no cover - tzdata mismatch
        raise CronTimezoneError(f"{timezone!r} is not a known timezone").at(
            "triggerCronTimezone"
        ) from None
    return timezone


def validate_cron(
    expression: str | None, timezone: str | None, *, min_interval_seconds: float
) -> None:
    """Check a cron trigger.

    Args:
        expression: a 5-field cron expression or a macro such as `@daily`; None checks
            only the timezone.
        timezone: an IANA timezone name; None means UTC.
        min_interval_seconds: the shortest gap allowed between two fires.

    Raises:
        CronExpressionError: the expression does not parse.
        CronTimezoneError: the timezone is unknown.
        CronTooFrequentError: two fires come closer than `min_interval_seconds`.
    """
    if timezone is not None:
        validate_timezone(timezone)
    if expression is None:
        return
    schedule = _schedule(expression, timezone)
    if min_interval_seconds <= 0:
        return
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    fires = _dates(schedule, _GAP_SAMPLES, start)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(fires)]
    if gaps and min(gaps) < min_interval_seconds:
        raise CronTooFrequentError(
            f"{expression!r} fires every {_duration(min(gaps))} at its most frequent; "
            f"the minimum interval is {_duration(min_interval_seconds)}"
        ).at("triggerCronExpression")


def next_fire_time(
    expression: str, timezone: str | None, after: dt.datetime | None = None
) -> dt.datetime | None:
    """The first fire time at or after `after` (default now), in UTC."""
    start = after or dt.datetime.now(dt.timezone.utc)
    for fire in _dates(_schedule(expression, timezone), 1, start):
        return fire.astimezone(dt.timezone.utc)
    return None


def _dates(schedule: Any, n: int, start: dt.datetime) -> list[dt.datetime]:
    """The first `n` fire times of a Prefect `CronSchedule` at or after `start`.

    `CronSchedule.get_dates` is a coroutine that awaits nothing (it sorts what the
    scheduler's generator gives), so one step finishes it: the spec's validators are
    synchronous and may run inside an event loop. Should a Prefect release make it await,
    it runs to completion in a thread of its own.
    """
    coroutine = schedule.get_dates(n=n, start=start)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return list(done.value)
    coroutine.close()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return list(pool.submit(asyncio.run, schedule.get_dates(n=n, start=start)).result())


def _schedule(expression: str, timezone: str | None):  # -> prefect CronSchedule
    from prefect.server.schemas.schedules import CronSchedule

    text = expression.strip()
    fields = text.split()
    if not (len(fields) == 5 or (len(fields) == 1 and text.lower() in MACROS)):
        raise CronExpressionError(
            f"{expression!r} is not a cron expression: give 5 fields "
            "(minute hour day-of-month month day-of-week) or a macro such as @daily"
        ).at("triggerCronExpression")
    try:
        return CronSchedule(cron=text, timezone=timezone or "UTC")
    except ValueError:
        raise CronExpressionError(f"{expression!r} is not a valid cron expression").at(
            "triggerCronExpression"
        ) from None


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


@cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


# Every name validate_timezone takes, sorted (what the OpenAPI document lists).
TIMEZONES = tuple(sorted(_timezones()))
