"""``schema``: the JSON Schema of each kind of document cnncost writes (the registry is
cnncost.documents).

What belongs here: commands about the documents themselves rather than a model.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cnncost.cli.options import OutputOpt, write_output
from cnncost.errors import UsageError


def schema(
    kind: Annotated[str | None, typer.Argument(
        metavar="[KIND]", help="A document kind (report, compare, ...) or its id "
        "(cnncost.report/1); without one, the kinds are listed.")] = None,
    output: OutputOpt = None,
) -> None:
    """The JSON Schema (draft 2020-12) of each JSON document cnncost writes: a document's
    "schema" key names its kind."""
    from cnncost.documents import DOCUMENTS, known_kinds

    if kind is None:
        width = max(len(k.name) for k in DOCUMENTS.values())
        idw = max(len(k.id) for k in DOCUMENTS.values())
        write_output("".join(f"{k.name:<{width}}  {k.id:<{idw}}  {k.summary}\n"
                             for k in DOCUMENTS.values()), output)
        return
    found = DOCUMENTS.get(kind) or next((k for k in DOCUMENTS.values() if k.id == kind), None)
    if found is None:
        raise UsageError(f"unknown document kind {kind!r}; known: {known_kinds()}")
    write_output(json.dumps(found.schema(), indent=2, ensure_ascii=False) + "\n", output)
