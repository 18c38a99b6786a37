"""Budgets kept in the store (``budgets``) with their audit trail (``budget_audit``).

``base`` holds the contract, ``sqlite``/``firestore`` the two backends, ``open_budgets`` picks the one
beside the runtime's job store. The rule they feed is pure: orchestrator/domain/budget.py.
"""

from __future__ import annotations

from orchestrator.budgets.base import BudgetChange, BudgetStore, open_budgets

__all__ = ["BudgetChange", "BudgetStore", "open_budgets"]
