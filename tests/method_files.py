"""Method plugins written as files, for the tests that load a method by its path
(``--method path/to/file.py:Class``): one class with the contract's required members, its
``generate`` body and any other members given by the test."""

from __future__ import annotations

import textwrap
from pathlib import Path

TEMPLATE = '''
from dataclasses import dataclass

import numpy as np
from PIL import Image


class {class_name}:
    name = "{name}"
    kind = "none"
{members}
    def prepare(self, subject, workdir):
        pass

    def identifier(self, subject):
        return {identifier!r}

    def generate(self, subject, workdir, prompts, seeds):
{generate}

    def release(self):
        pass
'''


def write_method_file(
    path: Path, class_name: str, name: str, generate: str, members: str = "", identifier: str = ""
) -> Path:
    """Write the plugin to ``path``; ``generate`` and ``members`` are source text (any indentation)."""
    path.write_text(
        TEMPLATE.format(
            class_name=class_name,
            name=name,
            identifier=identifier,
            members=textwrap.indent(textwrap.dedent(members).strip("\n"), "    ") + "\n" if members else "",
            generate=textwrap.indent(textwrap.dedent(generate).strip("\n"), "        "),
        )
    )
    return path
