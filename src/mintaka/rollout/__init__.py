"""Rollouts driven by core: canary, linear and blue-green steps with SLA gates and rollback."""
