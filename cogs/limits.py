"""Discord's size limits, applied to every message the bot sends or edits.

Discord refuses a message over its limits as a whole (400, code 50035), so a
long refusal or a long user-supplied name would otherwise leave the member with
no answer at all. :func:`fit_message` clips what is too long, with an ellipsis.
"""

from __future__ import annotations

from typing import Any

import discord

CONTENT = 2000
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
AUTHOR = 256
EMBED_TOTAL = 6000
SHORT = 1000  # the fallback when Discord refused a reply anyway
INVALID_FORM_BODY = 50035
ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def fit_content(content: str | None) -> str | None:
    return None if content is None else clip(content, CONTENT)


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """A copy of ``embed`` within every per-part limit and the 6,000-character total."""
    data: dict[str, Any] = embed.to_dict()
    _clip_key(data, "title", TITLE)
    _clip_key(data, "description", DESCRIPTION)
    fields = data.get("fields", [])[:FIELDS]
    for item in fields:
        _clip_key(item, "name", FIELD_NAME)
        _clip_key(item, "value", FIELD_VALUE)
    if fields:
        data["fields"] = fields
    _clip_key(data.get("footer", {}), "text", FOOTER)
    _clip_key(data.get("author", {}), "name", AUTHOR)
    _shrink_to_total(data)
    return discord.Embed.from_dict(data)


def fit_message(fields: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a send or an edit, with content and embeds within limits."""
    fitted = dict(fields)
    if isinstance(fitted.get("content"), str):
        fitted["content"] = fit_content(fitted["content"])
    if isinstance(fitted.get("embed"), discord.Embed):
        fitted["embed"] = fit_embed(fitted["embed"])
    if fitted.get("embeds"):
        fitted["embeds"] = [fit_embed(e) for e in fitted["embeds"][:10]]
    return fitted


def plain_text(fields: dict[str, Any]) -> str:
    """A short, plain version of a message: its content, else its embed's title and text."""
    parts = [fields.get("content") or ""]
    embed = fields.get("embed")
    if isinstance(embed, discord.Embed):
        parts += [f"**{embed.title}**" if embed.title else "", embed.description or ""]
        parts += [f"{f.name}: {f.value}" for f in embed.fields]
    return clip("\n".join(p for p in parts if p), SHORT)


def embed_size(embed: discord.Embed) -> int:
    """What Discord counts towards the 6,000 characters of an embed."""
    return _total(embed.to_dict())


def _clip_key(data: dict[str, Any], key: str, limit: int) -> None:
    if isinstance(data.get(key), str):
        data[key] = clip(data[key], limit)


def _total(data: dict[str, Any]) -> int:
    size = len(data.get("title", "")) + len(data.get("description", ""))
    size += sum(len(f.get("name", "")) + len(f.get("value", "")) for f in data.get("fields", []))
    size += len(data.get("footer", {}).get("text", "")) + len(
        data.get("author", {}).get("name", "")
    )
    return size


def _shrink_to_total(data: dict[str, Any]) -> None:
    """Cut the longest texts until the embed fits: the free texts (description, field
    values) first, then names and titles; fields last of all are dropped."""
    fields = data.get("fields", [])
    free = [(data, "description")] + [(f, "value") for f in fields]
    labels = [(f, "name") for f in fields] + [(data, "title")]
    labels += [(data.get("footer", {}), "text"), (data.get("author", {}), "name")]
    for holders in (free, labels):
        while (excess := _total(data) - EMBED_TOTAL) > 0:
            cuttable = [h for h in holders if len(h[0].get(h[1], "")) > 1]
            if not cuttable:
                break
            cuttable.sort(key=lambda h: -len(h[0][h[1]]))
            holder, key = cuttable[0]
            text = holder[key]
            runner_up = len(cuttable[1][0][cuttable[1][1]]) if len(cuttable) > 1 else 1
            cut = min(excess, max(1, len(text) - runner_up), len(text) - 1)
            holder[key] = clip(text, len(text) - cut)
    while _total(data) > EMBED_TOTAL and fields:
        fields.pop()
