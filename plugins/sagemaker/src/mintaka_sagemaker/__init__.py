"""Mintaka's Amazon SageMaker backend (distribution ``mintaka-sagemaker``).

Importing this package imports no AWS SDK: boto3 is loaded when the backend builds its first
client, so ``mintaka backends`` lists SageMaker even where the extra is not installed.
"""

from __future__ import annotations

INSTALL_HINT = "pip install 'mintaka[sagemaker]'"

__all__ = ["INSTALL_HINT"]
