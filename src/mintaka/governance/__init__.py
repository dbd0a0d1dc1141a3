"""Governance: the checks every lifecycle change passes before any backend is called."""
