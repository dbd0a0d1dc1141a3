"""Constants and helpers shared by the SageMaker backend's tests (a unique module name, so it
never clashes with another plugin's test helpers)."""

from __future__ import annotations

import json
import os
from typing import Any

ACCOUNT = "123456789012"
BUCKET = "mintaka-artifacts"
SETTINGS: dict[str, Any] = {
    "region": "us-east-1",
    "bucket": BUCKET,
    "prefix": "mintaka",
    "role_arn": f"arn:aws:iam::{ACCOUNT}:role/mintaka-sagemaker",
    "image_uri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mintaka-serve:1",
    "max_attempts": 4,
    "max_backoff_seconds": 0.0,
    "poll_seconds": 0.0,
    "connect_timeout": 1.0,
    "read_timeout": 5.0,
}
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def container_answer(body: bytes, variant: str) -> Any:
    """What the Mintaka inference image answers: one output per input row."""
    request = json.loads(body)
    rows = request["inputs"] if isinstance(request["inputs"], list) else [request["inputs"]]
    return [round(sum(float(v) for v in row.values()), 6) for row in rows]
