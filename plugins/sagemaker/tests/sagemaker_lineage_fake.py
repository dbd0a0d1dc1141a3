"""SageMaker ML Lineage now comes with the SageMaker fake itself
(``mintaka_conformance.fakes.sagemaker.lineage``), installed by ``mock_sagemaker()`` and
``sagemaker_server()`` with the rest of the extension; this name stays for test modules that still
enter ``lineage_installed()`` before ``mock_sagemaker()``."""

from __future__ import annotations

from mintaka_conformance.fakes.sagemaker import installed as lineage_installed

__all__ = ["lineage_installed"]
