"""Cron fire times at DST edges: `nextStart` is the time Prefect's scheduler fires.

Prefect's scheduler takes a deployment's fire times from the server `CronSchedule`
(prefect/server/models/deployments.py); its public `get_dates` returns the same times,
sorted. The expected times below are what Prefect 3.9.1 gives; the croniter package (7.0)
gives others at each of these edges (the skipped hour at 01:00 UTC on 30 March, a second
02:30 on 26 October, the repeated New York hour fired twice), which is why the translator
does not use it.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from prefect.server.schemas.schedules import CronSchedule

from prefect_pipelines.translator import errors as e
from prefect_pipelines.translator.schedule import _dates, next_fire_time, validate_cron

UTC = dt.timezone.utc

# (cron, timezone, after, the first fire times in UTC that Prefect gives)
DST_EDGES = [
    # Berlin springs forward at 02:00: 02:30 does not exist that night; Prefect fires at 03:30.
    ("30 2 * * *", "Europe/Berlin", dt.datetime(2025, 3, 30, 0, 0, tzinfo=UTC),
     ["2025-03-30T01:30", "2025-03-31T00:30"]),
    # Berlin falls back at 03:00: 02:30 comes twice; Prefect fires the first time only.
    ("30 2 * * *", "Europe/Berlin", dt.datetime(2025, 10, 26, 0, 0, tzinfo=UTC),
     ["2025-10-26T00:30", "2025-10-27T01:30"]),
    # New York falls back at 02:00: hourly fires on new wall-clock hours (a 2 h gap).
    ("0 * * * *", "America/New_York", dt.datetime(2025, 11, 2, 4, 30, tzinfo=UTC),
     ["2025-11-02T05:00", "2025-11-02T07:00", "2025-11-02T08:00"]),
    # A start inside the repeated hour.
    ("30 * * * *", "America/New_York", dt.datetime(2025, 11, 2, 5, 45, tzinfo=UTC),
     ["2025-11-02T07:30", "2025-11-02T08:30"]),
    # New York springs forward at 02:00: 02:15 does not exist.
    ("15 2 * * *", "America/New_York", dt.datetime(2025, 3, 9, 5, 0, tzinfo=UTC),
     ["2025-03-09T07:15", "2025-03-10T06:15"]),
]


def _prefect_fires(cron: str, timezone: str, after: dt.datetime, n: int) -> list[dt.datetime]:
    schedule = CronSchedule(cron=cron, timezone=timezone)
    return [fire.astimezone(UTC) for fire in asyncio.run(schedule.get_dates(n=n, start=after))]


def _fires(cron: str, timezone: str, after: dt.datetime, n: int) -> list[dt.datetime]:
    """Our next fire times, each asked from just after the one before."""
    fires: list[dt.datetime] = []
    start = after
    for _ in range(n):
        fire = next_fire_time(cron, timezone, start)
        assert fire is not None
        fires.append(fire)
        start = fire + dt.timedelta(seconds=1)
    return fires


@pytest.mark.parametrize(("cron", "timezone", "after", "expected"), DST_EDGES)
def test_next_start_is_when_prefect_fires_at_dst_edges(
        cron: str, timezone: str, after: dt.datetime, expected: list[str]) -> None:
    ours = _fires(cron, timezone, after, len(expected))
    assert ours == _prefect_fires(cron, timezone, after, len(expected))
    assert [fire.strftime("%Y-%m-%dT%H:%M") for fire in ours] == expected
    assert all(fire.tzinfo == UTC for fire in ours)


def test_next_start_at_a_fire_time_is_that_time() -> None:
    fire = dt.datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    assert next_fire_time("30 2 * * *", "Europe/Berlin", fire) == fire


def test_the_minimum_interval_counts_dst_gaps_as_prefect_fires() -> None:
    # 01:00 and 03:00 are 2 h apart, but on the night New York springs forward Prefect
    # fires them 1 h apart (06:00 and 07:00 UTC on 10 March 2024).
    validate_cron("0 1,3 * * *", "UTC", min_interval_seconds=7200)
    validate_cron("0 1,3 * * *", "America/New_York", min_interval_seconds=3600)
    with pytest.raises(e.CronTooFrequentError, match="every 1 h"):
        validate_cron("0 1,3 * * *", "America/New_York", min_interval_seconds=3601)
    spring = dt.datetime(2024, 3, 10, 5, 0, tzinfo=UTC)
    assert _fires("0 1,3 * * *", "America/New_York", spring, 2) == _prefect_fires(
        "0 1,3 * * *", "America/New_York", spring, 2) == [
        dt.datetime(2024, 3, 10, 6, 0, tzinfo=UTC), dt.datetime(2024, 3, 10, 7, 0, tzinfo=UTC)]


def test_fire_times_are_computed_inside_a_running_event_loop() -> None:
    """The spec's validators run in the API's event loop: no nested loop is needed."""
    async def inside() -> dt.datetime | None:
        validate_cron("*/5 * * * *", "Europe/Berlin", min_interval_seconds=300)
        return next_fire_time("0 9 * * 1", "UTC", dt.datetime(2025, 1, 1, tzinfo=UTC))

    assert asyncio.run(inside()) == dt.datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def test_a_get_dates_that_awaits_runs_to_completion_in_a_thread() -> None:
    """Should a Prefect release make `get_dates` await, fire times still come (slower)."""
    start = dt.datetime(2025, 1, 1, tzinfo=UTC)

    class Awaiting:
        async def get_dates(self, n: int, start: dt.datetime) -> list[dt.datetime]:
            await asyncio.sleep(0)
            return [start + dt.timedelta(hours=i) for i in range(n)]

    assert _dates(Awaiting(), 2, start) == [start, start + dt.timedelta(hours=1)]

    async def inside() -> list[dt.datetime]:
        return _dates(Awaiting(), 1, start)

    assert asyncio.run(inside()) == [start]
