"""Kubernetes quantity strings, as Rancher's steps and executor settings wrote CPU and
memory: `500m`, `1`, `0.5` CPUs; `64Mi`, `1Gi`, `128M`, `1048576` bytes.

Read by hand: the one library that parses them (the `kubernetes` client) is a large
dependency for two regular expressions. Only the plain decimal forms are taken (no
exponents such as `1e3`): what Rancher's UI and docs write.
"""

from __future__ import annotations

import re
from decimal import Decimal

from prefect_pipelines.translator.errors import InvalidValueError

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_MEMORY_UNIT = "Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E"
_CPU = re.compile(rf"(?P<number>{_NUMBER})(?P<unit>m?)")
_MEMORY = re.compile(rf"(?P<number>{_NUMBER})(?P<unit>{_MEMORY_UNIT}|)")
# Their shapes, for the OpenAPI document (the least and most are the functions' own).
CPU_PATTERN = rf"{_NUMBER}m?"
MEMORY_PATTERN = rf"{_NUMBER}(?:{_MEMORY_UNIT})?"
_MEMORY_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
# The docker engine refuses a smaller memory limit ("Minimum memory limit allowed is 6MB").
MIN_MEMORY_BYTES = 6 * 2**20
# 1024 CPUs: far more than any build host has; keeps nano-CPUs inside 64 bits.
MAX_CPUS = 1024


def cpu_nanos(text: str) -> int:
    """A CPU quantity in billionths of a CPU (docker's `NanoCpus`): `500m` -> 500000000.

    Raises:
        InvalidValueError: not a CPU quantity, zero, or over MAX_CPUS.
    """
    match = _CPU.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidValueError(
            f"{text!r} is not a CPU quantity: a number of CPUs (1, 0.5) or of thousandths "
            "of one (500m)")
    cpus = Decimal(match["number"]) / (1000 if match["unit"] else 1)
    nanos = int(cpus * 10**9)
    if nanos < 10**6:  # docker's smallest share of a CPU is a thousandth
        raise InvalidValueError(f"{text!r} is less than 1m, the smallest CPU quantity")
    if cpus > MAX_CPUS:
        raise InvalidValueError(f"{text!r} is more than {MAX_CPUS} CPUs")
    return nanos


def memory_bytes(text: str) -> int:
    """A memory quantity in bytes: `64Mi` -> 67108864, `1G` -> 1000000000.

    Raises:
        InvalidValueError: not a memory quantity, or under the engine's 6Mi minimum.
    """
    match = _MEMORY.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidValueError(
            f"{text!r} is not a memory quantity: a number of bytes with an optional unit "
            "(64Mi, 1Gi, 512M, 1048576)")
    size = int(Decimal(match["number"]) * _MEMORY_UNITS[match["unit"]])
    if size < MIN_MEMORY_BYTES:
        raise InvalidValueError(
            f"{text!r} is less than 6Mi, the smallest memory the docker engine gives a container")
    if size >= 2**63:
        raise InvalidValueError(f"{text!r} is more memory than any host has")
    return size


def cpu_quantity(text: str) -> str:
    """`text`, checked to be a CPU quantity (see `cpu_nanos`)."""
    cpu_nanos(text)
    return text


def memory_quantity(text: str) -> str:
    """`text`, checked to be a memory quantity (see `memory_bytes`)."""
    memory_bytes(text)
    return text
