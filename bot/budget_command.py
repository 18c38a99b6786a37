"""Parse ``/train budget …``: list the budgets, set one, remove one.

    /train budget                              the budgets in force, with spend and what is left
    /train budget set channel=C0123 50/month   (also tenant=, user=; a bare ``channel``: this one)
    /train budget remove channel=C0123

Pure, like bot/commands.py (which hands the words after ``budget`` here): a problem comes
back as OptionErrors naming the field and what is allowed. Slack sends a channel or a user
picked from its autocomplete as ``<#C0123|general>`` / ``<@U0456|bob>``; both are taken.
The amount and period follow BUDGETS' syntax (orchestrator/domain/budget.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.domain.budget import MAX_USD, PERIODS, SCOPES
from orchestrator.domain.errors import FieldError

from bot.options import OptionErrors

ACTIONS = ("list", "set", "remove")
AMOUNT = re.compile(r"\$?(?P<usd>[0-9]+(?:\.[0-9]+)?)\s*/\s*(?P<period>[a-z]+)", re.IGNORECASE)
MENTION = re.compile(r"<[#@](?P<id>[A-Z0-9]+)(?:\|[^>]*)?>")
IDS = {"channel": re.compile(r"[CGD][A-Z0-9]{2,}"), "user": re.compile(r"[UW][A-Z0-9]{2,}"),
       "tenant": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")}
USAGE = ("`/train budget` lists them; `/train budget set channel=C0123 50/month` (or tenant=, user=) sets one; "
         "`/train budget remove channel=C0123` removes one")
AMOUNT_ALLOWED = (f"USD per period: a number above 0 and at most {MAX_USD:,.0f}, then /week or /month, "
                  "e.g. `50/month` or `20/week`")
SCOPE_ALLOWED = "one of `tenant`, `channel=C0123` (or a bare `channel`: this one) or `user=U0456`"


@dataclass(frozen=True)
class BudgetList:
    pass


@dataclass(frozen=True)
class BudgetSet:
    scope: str
    key: str | None  # None: the caller's own (this channel, this tenant)
    usd: float
    period: str


@dataclass(frozen=True)
class BudgetRemove:
    scope: str
    key: str | None


BudgetCommand = BudgetList | BudgetSet | BudgetRemove


def parse(words: list[str]) -> BudgetCommand:
    """The budget command in the words after ``budget``; raises OptionErrors."""
    action = words[0].lower() if words else "list"
    rest = words[1:]
    if action not in ACTIONS:
        raise OptionErrors([FieldError("budget", f"`{action}` is not a budget action; {USAGE}")])
    if action == "list":
        if rest:
            raise OptionErrors([FieldError("budget", f"`list` takes nothing more; {USAGE}")])
        return BudgetList()
    amounts = [w for w in rest if w[:1] == "$" or w[:1].isdigit()]  # checked by parse_amount
    scopes = [w for w in rest if w not in amounts]
    if len(scopes) != 1:
        given = ", ".join(f"`{w}`" for w in scopes) or "none"
        raise OptionErrors([FieldError("scope", f"give exactly one scope ({SCOPE_ALLOWED}); got {given}")])
    scope, key = parse_scope(scopes[0])
    if action == "remove":
        if amounts:
            raise OptionErrors([FieldError("amount", "`remove` takes no amount: `/train budget remove channel=C0123`")])
        return BudgetRemove(scope, key)
    if len(amounts) != 1:
        raise OptionErrors([FieldError("amount", f"give one amount, {AMOUNT_ALLOWED}")])
    usd, period = parse_amount(amounts[0])
    return BudgetSet(scope, key, usd, period)


def parse_scope(word: str) -> tuple[str, str | None]:
    """``channel=C0123`` -> ("channel", "C0123"); a bare ``channel`` or ``tenant`` -> (scope, None)."""
    name, equals, raw = word.partition("=")
    scope = name.strip().lower()
    if scope not in SCOPES:
        raise OptionErrors([FieldError("scope", f"`{word}` is not a scope; {SCOPE_ALLOWED}")])
    raw = raw.strip()
    if not raw:
        if scope == "user":
            raise OptionErrors([FieldError("user", "needs a user id: `user=U0456` (or pick them: `user=@name`)")])
        return scope, None
    mention = MENTION.fullmatch(raw)
    key = mention["id"] if mention else raw.strip("`*_ ")
    key = key.upper() if scope != "tenant" else key
    if not IDS[scope].fullmatch(key):
        example = {"channel": "C0123ABCD", "user": "U0456ABCD", "tenant": "T0123ABCD"}[scope]
        raise OptionErrors([FieldError(scope, f"`{raw}` is not a Slack {scope} id; give one like `{example}`")])
    return scope, key


def parse_amount(word: str) -> tuple[float, str]:
    """``50/month`` or ``$20.5/week`` -> (50.0, "month")."""
    match = AMOUNT.fullmatch(word)
    if match is None:
        raise OptionErrors([FieldError("amount", f"`{word}` is not an amount; {AMOUNT_ALLOWED}")])
    usd, period = float(match["usd"]), match["period"].lower()
    if period not in PERIODS:
        raise OptionErrors([FieldError("period", f"`{period}` is not a period; use week or month (e.g. `50/month`)")])
    if not 0 < usd <= MAX_USD:
        raise OptionErrors([FieldError("amount", f"`{word}`: {AMOUNT_ALLOWED}")])
    return usd, period
