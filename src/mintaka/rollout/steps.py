"""The steps Mintaka fills in for a rollout strategy (no imports: the CLI reads it at start-up)."""

from __future__ import annotations

# The percentage of traffic the new route takes at each step, for every strategy whose steps
# Mintaka fills in (a shadow plan needs explicit steps).
STEP_SHARES: dict[str, tuple[int, ...]] = {
    "canary": (10, 50, 100),
    "linear": (25, 50, 75, 100),
    "blue_green": (100,),
    "direct": (100,),
}

# The steps Mintaka fills in for a native rollout (``mintaka rollout --native``): plans every cloud
# with a native deployment policy can walk as written (SageMaker's canary is one canary step, then
# the rest), where core's controller walks ``STEP_SHARES``.
NATIVE_STEP_SHARES: dict[str, tuple[int, ...]] = {
    "canary": (10, 100),
    "linear": (25, 50, 75, 100),
    "blue_green": (100,),
}

# The strategies a rollout walks with an SLA check at each step (``direct`` is a plain change).
STEPPED_STRATEGIES: tuple[str, ...] = tuple(s for s in STEP_SHARES if s != "direct")

# The longest bake of one rollout step: a week (longer is a typo, and overflows the sleep).
MAX_BAKE_SECONDS: float = 7 * 24 * 3600
