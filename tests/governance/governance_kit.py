"""Roles and a model card shared by the governance tests (a uniquely named module: every test
folder's ``conftest`` is imported as ``conftest``, so helpers imported by name live here)."""

from __future__ import annotations

APPROVERS = '[roles]\n"rita" = ["model-risk"]\n"raj" = ["model-risk"]\n'
"""A ``[roles]`` table with two model-risk approvers, as many as the high tier requires."""

CARD = {
    "intended_use": "rank applicants",
    "limitations": "synthetic data",
    "training_data": "applications v1",
    "evaluation": "AUC 0.9",
    "owner": "dana",
}
"""A model card with every field the default policy's medium and high tiers ask for."""
