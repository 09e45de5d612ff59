"""Specs are read by libyaml's parser where it is safe: the same documents, lines and errors
as the pure-Python loader, which reads everything else."""

from __future__ import annotations

from typing import Any

import pytest

from cnncost.errors import SpecError
from cnncost.sources import bundled_specs
from cnncost.spec import loader
from cnncost.spec.loader import YList, YMap, load_yaml

pytestmark = pytest.mark.skipif(loader._FAST is None, reason="PyYAML without libyaml")


def _pure(text: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(loader, "_FAST", None)
        return load_yaml(text, "t.yaml")


def _same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    if isinstance(a, YMap):
        assert (list(a), a.file, a.line, a.key_lines) == (list(b), b.file, b.line, b.key_lines)
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, YList):
        assert (len(a), a.file, a.line, a.item_lines) == (len(b), b.file, b.line, b.item_lines)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("name", list(bundled_specs()))
def test_bundled_specs_take_the_fast_path_and_read_the_same(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = bundled_specs()[name].read_text()
    assert loader._fast_ok(text)
    _same(load_yaml(text, "t.yaml"), _pure(text, monkeypatch))


TRICKY = {
    "anchor": "input: [3, 8]\nlayers: &x\n  - relu\n",
    "alias": "a: &x [1]\nb: *x\n",
    "duplicate key": "a: 1\na: 2\n",
    "tab indent": "layers:\n\t- relu\n",
    "tab after colon": "a:\t1\n",
    "bad indentation": "a:\n  b: 1\n c: 2\n",
    "non-printable": "a: \x07\n",
    "tag": "a: !!python/object:os.system ls\n",
    "list key": "? [1, 2]\n: 3\n",
    "unclosed": "a: [1, 2\n",
    "expression with star": "out: \"in * t\"\nk: c*t\n",
    "empty": "",
}


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_tricky_yaml_reads_or_fails_as_the_pure_loader(text: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def outcome(read: Any) -> Any:
        try:
            return ("ok", read())
        except SpecError as exc:
            return ("error", str(exc))

    fast = outcome(lambda: load_yaml(text, "t.yaml"))
    pure = outcome(lambda: _pure(text, monkeypatch))
    assert fast[0] == pure[0]
    if fast[0] == "ok":
        _same(fast[1], pure[1])
    else:
        assert fast[1] == pure[1]


@pytest.mark.slow  # big hostile input
def test_deep_nesting_is_refused_without_crashing() -> None:
    # libyaml composes nodes recursively in C: this depth would overflow its stack.
    text = "[" * 200_000 + "]" * 200_000
    assert not loader._fast_ok(text)
    with pytest.raises(SpecError, match=r"nested (too deeply|more than 200 levels deep)"):
        load_yaml(text, "deep.yaml")


def test_a_control_character_is_a_located_error() -> None:
    with pytest.raises(SpecError, match=r"^t\.yaml:3: malformed YAML: character U\+0007 is not "
                                        r"allowed in a spec$"):
        load_yaml("input: [3, 8]\nlayers:\n  - relu \x07\n", "t.yaml")
