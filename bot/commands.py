"""Parse the text of ``/train`` into a command.

``/train epochs=10 arch=yolo name="my run"`` is a training request; ``help``,
``status [ID]``, ``list``, ``cancel ID`` and ``retry ID`` are subcommands; no
text opens the modal. Parsing is pure: errors come back as OptionErrors that
name the option as typed and say what is allowed, and nothing is submitted.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from orchestrator.domain.errors import FieldError, suggest

from bot import budget_command
from bot.options import KEYS, OptionErrors, did_you_mean, lookup

SUBCOMMANDS = ("help", "status", "list", "cancel", "retry", "budget", "costs", "models")
MODEL_NAME_CHARS = 100  # a run's name (custom_name) is at most this long

# Slack (and phones) turn quotes into typographic ones; treat them as plain quotes.
SMART_QUOTES = str.maketrans({
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2009": " ", "\u202f": " ",
})
# Slack wraps links it recognises: <https://x|label> or <https://x>; users and channels stay.
SLACK_LINK = re.compile(r"<([^@#!|>][^|>]*)(?:\|[^>]*)?>")
JOB_ID = re.compile(r"[0-9a-fA-F-]{4,36}")


@dataclass(frozen=True)
class Train:
    """Submit a job; values are {option key: (name as typed, raw text)}."""

    values: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class OpenModal:
    """No text: open the form."""


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Status:
    ref: str | None = None  # a task id or its prefix; None: latest in this channel


@dataclass(frozen=True)
class ListJobs:
    pass


@dataclass(frozen=True)
class Cancel:
    ref: str


@dataclass(frozen=True)
class Retry:
    ref: str


@dataclass(frozen=True)
class Costs:
    """``/train costs [week|month]``: the team's spend report (ephemeral)."""

    period: str = "month"


@dataclass(frozen=True)
class Models:
    """``/train models [NAME]``: registered versions with their metrics and aliases (ephemeral)."""

    name: str | None = None


Command = Train | OpenModal | Help | Status | ListJobs | Cancel | Retry | Costs | Models | budget_command.BudgetCommand


def normalize(text: str) -> str:
    """Undo Slack's escaping (&amp; &lt; &gt;, link wrapping) and smart quotes."""
    text = SLACK_LINK.sub(r"\1", text or "")
    text = html.unescape(text) if "&" in text else text
    return text.translate(SMART_QUOTES).strip()


@dataclass
class _Token:
    text: str
    quoted: bool = False


def tokenize(text: str) -> list[_Token]:
    """Split on spaces outside quotes. A quote opens only at the start of a word or a
    value (``name="my run"``), so apostrophes inside words (``Bob's``) stay literal."""
    tokens: list[_Token] = []
    current: list[str] = []
    started = quoted = False
    quote: str | None = None
    for char in text:
        if quote:
            if char == quote:
                quote = None
            else:
                current.append(char)
            continue
        if char.isspace():
            if started:
                tokens.append(_Token("".join(current), quoted))
            current, started, quoted = [], False, False
            continue
        if char in "\"'" and (not started or (current and current[-1] == "=")):
            quote, started, quoted = char, True, True
            continue
        current.append(char)
        started = True
    if quote:
        word = "".join(current)
        name = (word.partition("=")[0] if "=" in word else "") or "text"
        raise OptionErrors([FieldError(name, f"has an unclosed {quote} quote")])
    if started:
        tokens.append(_Token("".join(current), quoted))
    return _join_spaced_equals(tokens)


def _join_spaced_equals(tokens: list[_Token]) -> list[_Token]:
    """Forgive ``epochs = 10`` and ``epochs =10`` (spaces around the equals sign)."""
    joined: list[_Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.text.startswith("=") and joined and "=" not in joined[-1].text:
            previous = joined.pop()
            token = _Token(previous.text + token.text, token.quoted)
        if token.text.endswith("=") and not token.quoted and i + 1 < len(tokens) and "=" not in tokens[i + 1].text:
            token = _Token(token.text + tokens[i + 1].text, tokens[i + 1].quoted)
            i += 1
        joined.append(token)
        i += 1
    return joined


def _job_ref(word: str, subcommand: str) -> str:
    ref = word.strip("`<>*_ ")
    if not JOB_ID.fullmatch(ref):
        raise OptionErrors([FieldError("id", f"`{word}` is not a job id; use the id shown on the card "
                                              f"(its first 8 characters are enough), e.g. `/train {subcommand} 1a2b3c4d`")])
    return ref.lower()


def _subcommand(name: str, args: list[_Token]) -> Command:
    words = [a.text for a in args]
    if any("=" in w for w in words):
        raise OptionErrors([FieldError(name, f"`{name}` takes no key=value options; "
                                             f"to start a job, write only options (e.g. `/train epochs=10`)")])
    if name == "help":
        return Help()
    if name == "costs":
        if len(words) > 1 or (words and words[0].lower() not in ("week", "month")):
            raise OptionErrors([FieldError("costs", "takes week or month (default month): `/train costs week`")])
        return Costs(words[0].lower() if words else "month")
    if name == "models":  # a name may have spaces: the words are the name
        model = " ".join(words).strip()
        if len(model) > MODEL_NAME_CHARS:
            raise OptionErrors([FieldError("models", f"a model name is at most {MODEL_NAME_CHARS} characters: "
                                                     "`/train models [NAME]`")])
        return Models(model or None)
    if name == "list":
        if words:
            raise OptionErrors([FieldError("list", "takes no arguments: `/train list`")])
        return ListJobs()
    if name == "status":
        if len(words) > 1:
            raise OptionErrors([FieldError("status", "takes at most one job id: `/train status [ID]`")])
        return Status(_job_ref(words[0], name) if words else None)
    if len(words) != 1:
        raise OptionErrors([FieldError(name, f"needs exactly one job id: `/train {name} ID`")])
    ref = _job_ref(words[0], name)
    return Cancel(ref) if name == "cancel" else Retry(ref)


def parse(text: str) -> Command:
    """The command in ``text``; raises OptionErrors listing every problem at once."""
    tokens = [t for t in tokenize(normalize(text)) if t.text]  # a bare "" says nothing
    if not tokens:
        return OpenModal()
    first = tokens[0].text.lower()
    if "=" not in first:
        if first == "budget":  # its own grammar (scope=key, amounts): bot/budget_command.py
            return budget_command.parse([t.text for t in tokens[1:]])
        if first.lstrip("-") in SUBCOMMANDS:
            return _subcommand(first.lstrip("-"), tokens[1:])
        if first in ("?", "-h"):
            return Help()
    values: dict[str, tuple[str, str]] = {}
    errors: list[FieldError] = []
    for token in tokens:
        name, equals, raw = token.text.partition("=")
        if not equals:
            errors.append(FieldError(token.text, _bare_word(token.text)))
            continue
        if not name.strip():
            errors.append(FieldError(token.text, f"`{token.text}` has no option name before `=`; "
                                                 f"write key=value, e.g. `epochs=10`"))
            continue
        option = lookup(name)
        if option is None:
            errors.append(FieldError(name, did_you_mean(name)))
            continue
        if option.key in values:
            errors.append(FieldError(name, f"`{option.key}` is given more than once"))
            continue
        if not raw.strip() and not token.quoted:
            errors.append(FieldError(name, f"needs a value; allowed: {option.allowed}"))
            continue
        values[option.key] = (name, raw)
    if errors:
        raise OptionErrors(errors)
    return Train(values)


def _bare_word(word: str) -> str:
    option = lookup(word)
    if option is not None:
        return f"needs a value: write `{option.key}=VALUE` ({option.allowed})"
    hint = suggest(word.lower(), list(SUBCOMMANDS))
    text = f"`{word}` is not an option"
    if hint:
        text += f" (did you mean `/train {hint}`?)"
    return (text + f"; write key=value options ({', '.join(KEYS)}) "
            f"or a subcommand ({', '.join(SUBCOMMANDS)})")
