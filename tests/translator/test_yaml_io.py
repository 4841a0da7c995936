"""YAML from hostile hands: refused quickly, with a clear error, within bounded memory."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from prefect_pipelines.translator import errors as e
from prefect_pipelines.translator import load_yaml, parse_pipeline_yaml

BOMB = """
a: &a ["x","x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
stages: *i
"""


def refused_fast(text: str | bytes, error: type[Exception], **limits: int) -> Exception:
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(error) as info:
        parse_pipeline_yaml(text, **limits) if not limits else load_yaml(text, **limits)
    took = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Generous bounds for a shared machine: the point is "not exponential".
    assert took < 5, took
    assert peak < 200 * 1024 * 1024, peak
    return info.value


class TestHostileYaml:
    def test_alias_bomb(self) -> None:
        err = refused_fast(BOMB, e.YamlLimitError)
        assert "aliases" in str(err)

    def test_deep_nesting(self) -> None:
        err = refused_fast("a: " + "[" * 100_000 + "]" * 100_000, e.YamlLimitError)
        assert "nests deeper" in str(err)

    def test_ten_megabytes(self) -> None:
        text = "stages:\n" + "# padding\n" * (1_100_000)
        err = refused_fast(text, e.YamlLimitError)
        assert "limit is 1048576 bytes" in str(err)

    def test_recursive_alias(self) -> None:
        refused_fast("a: &a [*a]\n", (e.YamlLimitError, e.YamlSyntaxError))  # type: ignore[arg-type]

    def test_syntax_error_names_the_line(self) -> None:
        err = refused_fast("stages:\n  - name: a\n   steps: [", e.YamlSyntaxError)
        assert "line" in str(err)

    def test_duplicate_keys_are_refused(self) -> None:
        err = refused_fast("stages: []\nstages: []\n", e.YamlSyntaxError)
        assert "appears twice" in str(err) and "line 2" in str(err)

    def test_python_tags_are_refused(self) -> None:
        refused_fast("stages: !!python/object/apply:os.system ['true']", e.YamlSyntaxError)

    def test_several_documents_are_refused(self) -> None:
        refused_fast("stages: []\n---\nstages: []\n", e.YamlSyntaxError)

    def test_limits_are_parameters(self) -> None:
        # The mapping and three lists nest four deep.
        assert load_yaml("a: [1, [2, [3]]]", max_depth=4) == {"a": [1, [2, [3]]]}
        with pytest.raises(e.YamlLimitError):
            load_yaml("a: [1, [2, [3]]]", max_depth=3)
        with pytest.raises(e.YamlLimitError):
            load_yaml("a: [1, 2, 3]", max_nodes=4)

    def test_anchors_within_limits_work(self) -> None:
        data = load_yaml("base: &b {image: busybox}\nx: *b\n")
        assert data == {"base": {"image": "busybox"}, "x": {"image": "busybox"}}

    def test_empty_document(self) -> None:
        assert load_yaml("") is None
        with pytest.raises(e.WrongTypeError):
            parse_pipeline_yaml("")
