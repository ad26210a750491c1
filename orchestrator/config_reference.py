"""The campaign settings as documentation, generated from the config models so that the
reference cannot drift from the code: docs/configuration.md (`cutloop config reference`)
and a full, commented campaign file (`cutloop config example`)."""

from __future__ import annotations

import json
import textwrap
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from orchestrator.config import CampaignConfig

# Settings a campaign fills from one of its own top-level settings when they are not
# given: the reference names that setting as the default, and the example leaves them
# out, since writing the default down would stop them following it.
FOLLOWS = {
    "generator.sampling.seed": "seed",
    "cut.seed": "seed",
    "cut.method": "method",
}
EXAMPLE_WIDTH = 88
REFERENCE_INTRO = """\
# Configuration reference

Every setting of a campaign file, with its type, default and what it does. Generated
from the config models by `cutloop config reference -o docs/configuration.md`; do not
edit by hand (`tests/docs/test_configuration.py` fails when this file and the code
differ). `cutloop config example` prints a campaign file with every setting at its
default and these descriptions as comments; `cutloop validate FILE` checks a file
without running it.

A campaign file is YAML. Only `name` is required; a setting left out takes its default.
Settings nest: `generator.sampling.n: 4` is written

```yaml
generator:
  sampling:
    n: 4
```
"""


@dataclass(frozen=True)
class Setting:
    path: str  # as written in a campaign file, e.g. "cut.lambda"
    field: FieldInfo

    @property
    def key(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def description(self) -> str:
        return self.field.description or ""

    @property
    def model(self) -> type[BaseModel] | None:
        """The settings model this setting holds, for a section of its own."""
        annotation = self.field.annotation
        return annotation if _is_model(annotation) else None

    @property
    def variants(self) -> dict[str, type[BaseModel]]:
        """A discriminated union's models by their `kind`, the default's first."""
        if self.field.discriminator is None:
            return {}
        models = {_kind(m): m for m in get_args(self.field.annotation)}
        first = _kind(type(self.field.default))
        return {first: models.pop(first), **models}

    @property
    def required(self) -> bool:
        return self.field.default is PydanticUndefined and self.field.default_factory is None

    @property
    def default(self) -> Any:
        return self.field.get_default(call_default_factory=True)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _kind(model: type[BaseModel]) -> str:
    return model.model_fields["kind"].default


def settings(model: type[BaseModel], prefix: str = "") -> Iterator[Setting]:
    """The model's own settings, in declaration order, by the names a file uses."""
    for name, field in model.model_fields.items():
        if name != "kind":  # a union's discriminator is documented with the union
            yield Setting(f"{prefix}{field.alias or name}", field)


def type_name(annotation: Any) -> str:
    """A type as a reader of YAML thinks of it: `int or null`, `auto, vllm or hf`."""
    origin = get_origin(annotation)
    if origin is Literal:
        return _alternatives([str(value) for value in get_args(annotation)])
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in get_args(annotation))
    if origin is tuple:
        return f"list of {type_name(get_args(annotation)[0])}"
    if annotation is type(None):
        return "null"
    if annotation is Path:
        return "path"
    if _is_model(annotation):
        return "mapping"
    return annotation.__name__


def _alternatives(values: list[str]) -> str:
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def yaml_value(value: Any) -> str:
    """One value as a campaign file writes it, on one line."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str) and "\n" in value:
        return json.dumps(value, ensure_ascii=False)  # a YAML double-quoted scalar
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...")


# --- docs/configuration.md -----------------------------------------------------------


def _default_cell(setting: Setting) -> str:
    if setting.path in FOLLOWS:
        return f"`{FOLLOWS[setting.path]}`"
    if setting.required:
        return "required"
    text = yaml_value(setting.default)
    return f"`{text}`" if len(text) <= 40 else "see description"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(model: type[BaseModel], prefix: str) -> list[str]:
    lines = ["| setting | type | default | what it does |", "|---|---|---|---|"]
    for s in settings(model, prefix):
        kind = "section below" if s.model or s.variants else _cell(type_name(s.field.annotation))
        default = "" if s.model or s.variants else _default_cell(s)
        lines.append(f"| `{s.path}` | {kind} | {default} | {_cell(s.description)} |")
    return lines


def _sections(model: type[BaseModel], prefix: str) -> Iterator[list[str]]:
    """One section per nested settings model, and one per variant of a union."""
    for s in settings(model, prefix):
        if s.model is not None:
            intro = _sentence(s.description)
            yield [f"## `{s.path}`", "", intro, "", *_table(s.model, f"{s.path}.")]
            yield from _sections(s.model, f"{s.path}.")
        elif s.variants:
            kinds = list(s.variants)
            intro = (
                f"{_sentence(s.description)} `{s.path}.kind` is {_alternatives(kinds)} "
                f"(default `{kinds[0]}`); each kind takes the settings below."
            )
            yield [f"## `{s.path}`", "", intro]
            for kind, variant in s.variants.items():
                rows = _table(variant, f"{s.path}.") if list(settings(variant)) else []
                doc = _sentence(_kind_doc(variant))
                yield [f"### `{s.path}` of kind `{kind}`", "", doc, "", *rows]
                yield from _sections(variant, f"{s.path}.")


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def _kind_doc(variant: type[BaseModel]) -> str:
    return variant.model_fields["kind"].description or ""


def reference_markdown() -> str:
    """docs/configuration.md."""
    parts = [REFERENCE_INTRO, "## Campaign\n", "\n".join(_table(CampaignConfig, ""))]
    parts += ["\n".join(section) for section in _sections(CampaignConfig, "")]
    return "\n\n".join(part.strip("\n") for part in parts) + "\n"


# --- the example campaign file ---------------------------------------------------------


def _comment(text: str, indent: str) -> list[str]:
    width = EXAMPLE_WIDTH - len(indent) - 2
    return [f"{indent}# {line}" for line in textwrap.wrap(text, width)]


def _example_value(setting: Setting) -> Any:
    if setting.required:
        return setting.field.examples[0]
    return setting.default


def _example_lines(model: type[BaseModel], prefix: str, depth: int) -> Iterator[str]:
    indent = "  " * depth
    for s in settings(model, prefix):
        yield from _comment(s.description, indent)
        if s.model is not None:
            yield f"{indent}{s.key}:"
            yield from _example_lines(s.model, f"{s.path}.", depth + 1)
        elif s.variants:
            yield from _variant_lines(s, indent, depth)
        elif s.path in FOLLOWS:
            yield f"{indent}# {s.key}: (unset: the campaign's `{FOLLOWS[s.path]}`)"
        else:
            required = "  # required" if s.required else ""
            yield f"{indent}{s.key}: {yaml_value(_example_value(s))}{required}"


def _variant_lines(setting: Setting, indent: str, depth: int) -> Iterator[str]:
    """The default kind's settings, then every other kind's, commented out."""
    yield f"{indent}{setting.key}:"
    for index, (kind, variant) in enumerate(setting.variants.items()):
        lines = [*_comment(_kind_doc(variant), indent + "  "), f"{indent}  kind: {kind}"]
        lines += _example_lines(variant, f"{setting.path}.", depth + 1)
        if index == 0:
            yield from lines
        else:
            yield f"{indent}  # or, instead:"
            yield from (f"{indent}  # {line.removeprefix(indent + '  ')}" for line in lines)


def example_yaml() -> str:
    """A campaign file with every setting at its default, each described above it."""
    head = [
        "# A cutloop campaign with every setting at its default (docs/configuration.md).",
        "# Check it with `cutloop validate FILE`, run it with `cutloop run FILE`.",
    ]
    return "\n".join([*head, *_example_lines(CampaignConfig, "", 0)]) + "\n"
