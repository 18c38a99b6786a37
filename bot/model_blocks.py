"""Block Kit for the model registry in Slack: ``/train models [NAME]`` and the Promote button's answers.

Pure: registry entries and aliases in, a Message out. Model names are user text (a run's name), so
they reach Slack only through ``escape``. The answer stays within Block Kit's limits however many
versions a team has: at most ``NAMES`` names (one section each), ``VERSIONS`` versions per name
(``VERSIONS_ONE`` when one name is asked for), each section clipped to Slack's 3000 characters.
"""

from __future__ import annotations

from orchestrator.domain.model_versions import MAP50, PRODUCTION, map_of
from orchestrator.registry.base import ModelAlias, ModelEntry

from bot.blocks import Message, clip, context, escape, fit, section, short_id

NAMES, VERSIONS, VERSIONS_ONE = 20, 6, 25


def _row(entry: ModelEntry, aliases: list[str]) -> str:
    figures = [f"*v{entry.version}*"]
    for kind, label in (("mAP50-95", "mAP50-95"), (MAP50, "mAP50")):
        value = map_of(entry.metrics, kind)
        figures.append(f"{label} {value:.3f}" if value is not None else f"{label} \u2013")
    figures += [escape(entry.architecture), f"job `{short_id(entry.task_id)}`", f"{entry.created_at:%Y-%m-%d %H:%M} UTC"]
    marks = "".join(f" \u00b7 :rocket: *{escape(a)}*" if a == PRODUCTION else f" \u00b7 _{escape(a)}_"
                    for a in aliases)
    return "\u2022 " + " \u00b7 ".join(figures) + marks


def _name_section(name: str, entries: list[ModelEntry], aliases: list[ModelAlias], limit: int) -> str:
    shown = {e.version for e in entries}
    production = next((a for a in aliases if a.alias == PRODUCTION), None)
    head = f"*`{escape(name)}`*"
    if production is None:
        head += " \u00b7 nothing in production yet"
    elif production.version in shown:
        head += f" \u00b7 in production: *v{production.version}*"
    else:
        head += f" \u00b7 in production: v{production.version} (not shown here)"
    rows = [_row(e, [a.alias for a in aliases if a.version == e.version]) for e in entries[:limit]]
    if len(entries) > limit:
        rows.append(f"\u2022 and {len(entries) - limit} older versions")
    return clip(head + "\n" + "\n".join(rows), 3000)


def models_message(entries: list[ModelEntry], aliases: list[ModelAlias], name: str | None = None) -> Message:
    """The ephemeral answer to ``/train models [NAME]``: versions newest first, by name, with their aliases."""
    if not entries:
        what = f"No model `{escape(name)}` here" if name else "No registered models here yet"
        return Message(what.replace("`", ""), [section(f":package: {what}. A completed job registers its "
                                                      "model under its name.")])
    by_name: dict[str, list[ModelEntry]] = {}
    for entry in entries:  # newest first: names in the order of their newest version
        by_name.setdefault(entry.name, []).append(entry)
    limit = VERSIONS_ONE if name else VERSIONS
    blocks = [section(f":package: *Models*{f' named `{escape(name)}`' if name else ''}: versions newest first; "
                      "the completion reply's *Promote* button (its submitter or an admin) sets production.")]
    for model, versions in list(by_name.items())[:NAMES]:
        blocks.append(section(_name_section(model, versions, [a for a in aliases if a.name == model], limit)))
    if len(by_name) > NAMES:
        blocks.append(context(f"and {len(by_name) - NAMES} more models: `/train models NAME` shows one"))
    text = f"Models: {len(by_name)} name{'s' if len(by_name) != 1 else ''}, {len(entries)} versions"
    return Message(text, fit(blocks))


def promoted_text(name: str, version: int, alias: str, previous: int | None, changed: bool) -> str:
    """What the promoter is told."""
    if not changed:
        return f":rocket: `{escape(name)}` v{version} is already in {escape(alias)}."
    was = f" (was v{previous})" if previous is not None else ""
    return f":rocket: `{escape(name)}` v{version} is now in {escape(alias)}{was}."
