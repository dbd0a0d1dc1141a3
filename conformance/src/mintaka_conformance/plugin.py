"""pytest plugin entry point of the conformance suite."""

from __future__ import annotations
