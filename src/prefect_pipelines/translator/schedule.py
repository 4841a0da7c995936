"""Cron triggers: validation and fire times, computed the way Prefect's scheduler does.

Fire times come from Prefect's own `CronSchedule` (the server schema the scheduler uses),
so `nextStart` on the API is the time Prefect will really fire, DST rules included.
"""

from __future__ import annotations

import datetime as dt
import itertools
from functools import cache
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
    fires = list(schedule._get_dates_generator(n=_GAP_SAMPLES, start=start))
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
    for fire in _schedule(expression, timezone)._get_dates_generator(n=1, start=start):
        return fire.astimezone(dt.timezone.utc)
    return None


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
