"""The error shapes the extension raises, serialised by moto exactly like its own."""

from __future__ import annotations

from moto.core.exceptions import ServiceException
from moto.sagemaker.exceptions import ConflictException, ResourceNotFound, ValidationError
from moto.sagemaker.exceptions import ResourceInUseException as ResourceInUse

__all__ = [
    "ConflictException",
    "ResourceInUse",
    "ResourceNotFound",
    "RuntimeValidationError",
    "ValidationError",
]


class RuntimeValidationError(ServiceException):
    """SageMaker Runtime's modelled 400 error: its code is ``ValidationError`` (no "Exception")."""

    code = "ValidationError"
