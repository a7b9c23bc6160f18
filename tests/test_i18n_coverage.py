"""Nothing member-facing is written inline: every text shown to a member goes through the
catalog (a gettext call, ``N_`` or ``locale_str``), found by reading the code's syntax tree."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Where member-facing texts are written.
SCANNED = (
    "avatar_api/exceptions.py",
    "avatar_api/models.py",
    "avatar_api/photos.py",
    "avatar_api/preflight.py",
    "avatarbot/policy.py",
    "avatarbot/service.py",
    "cogs/admin.py",
    "cogs/avatar.py",
    "cogs/delivery.py",
    "cogs/views.py",
    "cogs/errors.py",
    "cogs/ui.py",
)

TRANSLATING_CALLS = frozenset({"gettext", "ngettext", "N_", "N_plural", "locale_str", "_"})


@dataclass(frozen=True)
class Sink:
    """Which arguments of a call a member reads: positions and keywords ("*": all)."""

    positions: tuple[int, ...] = ()
    keywords: tuple[str, ...] = ()


SINKS: dict[str, Sink] = {
    # Discord messages, embeds and components
    "send": Sink((0,), ("content",)),
    "send_message": Sink((0,), ("content",)),
    "edit_message": Sink((), ("content",)),
    "edit_original_response": Sink((), ("content",)),
    "edit": Sink((), ("content",)),
    "Embed": Sink((), ("title", "description")),
    "add_field": Sink((), ("name", "value")),
    "set_field_at": Sink((), ("name", "value")),
    "set_footer": Sink((), ("text",)),
    "set_author": Sink((), ("name",)),
    "Button": Sink((), ("label",)),
    "button": Sink((), ("label",)),
    "TextInput": Sink((), ("label", "placeholder", "default")),
    "Modal": Sink((), ("title",)),
    "SelectOption": Sink((), ("label", "description")),
    "Choice": Sink((), ("name",)),
    "command": Sink((), ("description",)),
    "Group": Sink((), ("description",)),
    "describe": Sink((), ("*",)),  # every option's description
    # refusals and errors members read
    "refuse": Sink((1,), ("message",)),
    "send_ephemeral": Sink((1,), ("message",)),
    "AvatarError": Sink((0,), ("message",)),
    "Refusal": Sink((1,), ("text",)),
    "PhotoError": Sink((0,), ("message",)),
    "ValidationError": Sink((0,), ("message",)),
    "Problem": Sink((2,), ("text",)),
}
# Attributes a member reads when set (``embed.description = ...``).
SINK_ATTRIBUTES = frozenset({"description", "title", "label", "placeholder", "content"})
# Class keywords of a GroupCog.
SINK_CLASS_KEYWORDS = frozenset({"group_description"})


def call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def has_words(text: str) -> bool:
    """Text a person reads: letters outside ``{fields}``, markdown and mention syntax."""
    bare = re.sub(r"\{[^{}]*\}|<[@#&!]*\d*>", "", text)
    return any(c.isalpha() for c in bare)


def inline_text(node: ast.AST) -> str | None:
    """The words of an inline literal (a string, an f-string, a concatenation); None if none."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value if has_words(node.value) else None
    if isinstance(node, ast.JoinedStr):
        parts = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
        words = parts if has_words(parts) else None
        nested = [inline_text(v.value) for v in node.values if isinstance(v, ast.FormattedValue)]
        return words or next((n for n in nested if n), None)
    if isinstance(node, ast.BinOp):
        return inline_text(node.left) or inline_text(node.right)
    if isinstance(node, ast.IfExp):
        return inline_text(node.body) or inline_text(node.orelse)
    if isinstance(node, ast.BoolOp):
        return next((t for t in map(inline_text, node.values) if t), None)
    if isinstance(node, ast.Call) and call_name(node) == "join":
        return next((t for t in map(inline_text, node.args) if t), None)
    if isinstance(node, ast.Call) and call_name(node) == "format":
        return inline_text(node.func.value) if isinstance(node.func, ast.Attribute) else None
    return None


def shown_arguments(call: ast.Call) -> list[ast.AST]:
    sink = SINKS.get(call_name(call) or "")
    if sink is None:
        return []
    shown = [call.args[i] for i in sink.positions if i < len(call.args)]
    for keyword in call.keywords:
        if keyword.arg is not None and ("*" in sink.keywords or keyword.arg in sink.keywords):
            shown.append(keyword.value)
    return shown


def untranslated(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []

    def report(node: ast.AST, text: str) -> None:
        found.append(f"{path.name}:{node.lineno}: {text[:60]!r}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node) not in TRANSLATING_CALLS:
            for argument in shown_arguments(node):
                text = inline_text(argument)
                if text:
                    report(argument, text)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr in SINK_ATTRIBUTES:
                    text = inline_text(node.value)
                    if text:
                        report(node, text)
        elif isinstance(node, ast.ClassDef):
            for keyword in node.keywords:
                text = inline_text(keyword.value) if keyword.arg in SINK_CLASS_KEYWORDS else None
                if text:
                    report(keyword.value, text)
    return found


@pytest.mark.parametrize("module", SCANNED)
def test_every_member_facing_text_goes_through_the_catalog(module: str) -> None:
    assert untranslated(ROOT / module) == []


def test_the_scan_finds_inline_texts(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "await interaction.response.send_message(f'Cooldown set to {x}.')\n"
        "embed = discord.Embed(title=t.gettext('Fine'), description='Not fine')\n"
        "embed.description = 'Also not fine'\n"
        "await refuse(interaction, N_('Fine {x}', x=1))\n"
        "await refuse(interaction, f'⚠️ {message}')\n"
        "raise AvatarError('Give one or more words.')\n"
        "label = discord.ui.Button(label='Cancel')\n",
        encoding="utf-8",
    )
    found = untranslated(sample)
    assert sorted(int(line.split(":")[1]) for line in found) == [1, 2, 3, 6, 7]
