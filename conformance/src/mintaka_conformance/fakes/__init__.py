"""Fake clouds for backends' own fixtures; the conformance suite itself never imports these."""
