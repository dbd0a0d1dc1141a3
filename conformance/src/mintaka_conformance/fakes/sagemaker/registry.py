"""Model registry operations as AWS documents them: models, package groups, packages and tags.

Each function here becomes a method of moto's ``SageMakerResponse`` when the extension is
installed (``self`` is the response object; ``self.sagemaker_backend`` the account/region backend).
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.sagemaker.models import ModelPackage, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import arn_formatter

from .errors import ConflictException, ValidationError
from .originals import call_original, original_body
from .state import PackageState, SageMakerState, state_of

# Fields CreateModelPackage / UpdateModelPackage accept that moto's ModelPackage does not keep.
PACKAGE_EXTRA_FIELDS = ("SourceUri", "ModelCard", "ModelLifeCycle", "ModelPackageRegistrationType")

_ARN_RE = re.compile(
    r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:(?P<type>[a-z\-]+)/(?P<id>.+)$"
)


def resource_arn(backend: SageMakerModelBackend, kind: str, name: str) -> str:
    return arn_formatter(kind, name, backend.account_id, backend.region_name)


# --- models -------------------------------------------------------------------------------------


def create_model(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    name = self._get_param("ModelName")
    if name in backend._models:
        raise ValidationError(
            f'Cannot create already existing model "{resource_arn(backend, "model", name)}".'
        )
    answer = call_original(self, "create_model")
    # moto drops EnableNetworkIsolation (always False); AWS keeps what was asked.
    backend._models[name].enable_network_isolation = bool(
        self._get_param("EnableNetworkIsolation", False)
    )
    return answer


# --- model package groups -----------------------------------------------------------------------


def _group_arn(backend: SageMakerModelBackend, name: str) -> str:
    return resource_arn(backend, "model-package-group", name)


def create_model_package_group(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    name = self._get_param("ModelPackageGroupName")
    if name in backend.model_package_groups:
        raise ValidationError(f"Model Package Group already exists: {_group_arn(backend, name)}")
    return call_original(self, "create_model_package_group")


def _group_name(value: str) -> str:
    match = _ARN_RE.match(value)
    return match.group("id") if match else value


def delete_model_package_group(self: SageMakerResponse) -> EmptyResult:
    backend = self.sagemaker_backend
    name = _group_name(self._get_param("ModelPackageGroupName"))
    if name not in backend.model_package_groups:
        raise ValidationError(f"ModelPackageGroup {_group_arn(backend, name)} does not exist.")
    versions = [p for p in backend.model_packages.values() if p.model_package_group_name == name]
    if versions:
        raise ConflictException(
            f"Model Package Group {_group_arn(backend, name)} contains {len(versions)} model "
            "package(s); delete them before deleting the group."
        )
    state = state_of(backend)
    with state.lock:
        del backend.model_package_groups[name]
        state.group_versions.pop(name, None)
        backend.model_package_name_mapping.pop(name, None)
    return EmptyResult()


# --- model packages -----------------------------------------------------------------------------


def package_state(state: SageMakerState, arn: str) -> PackageState:
    package = state.packages.get(arn)
    if package is None:
        package = state.packages[arn] = PackageState()
    return package


def _find_package(backend: SageMakerModelBackend, name_or_arn: str) -> ModelPackage:
    mapped = backend.model_package_name_mapping.get(name_or_arn, name_or_arn)
    package = backend.model_packages.get(mapped) or backend.model_packages.get(mapped.lower())
    if package is None:
        raise ValidationError(f"ModelPackage {name_or_arn} does not exist.")
    return package


def _next_version(backend: SageMakerModelBackend, state: SageMakerState, group: str) -> int:
    # AWS never reuses a version number inside a group, even after a version is deleted.
    issued = state.group_versions.get(group)
    if issued is None:
        issued = max(
            (
                p.model_package_version or 0
                for p in backend.model_packages.values()
                if p.model_package_group_name == group
            ),
            default=0,
        )
    state.group_versions[group] = issued + 1
    return issued + 1


def _apply_script(state: SageMakerState, key: str, package: PackageState) -> None:
    queued = state.package_scripts.get(key)
    if queued:
        script = queued.popleft()
        package.script = deque(script.statuses)
        package.status = script.statuses[0]
        package.failure_reason = script.failure_reason


def _new_package(
    backend: SageMakerModelBackend,
    state: SageMakerState,
    fields: dict[str, Any],
) -> str:
    """Create a model package from CreateModelPackage's fields; its ARN (the first package's,
    for a ClientToken seen before). The caller holds ``state.lock``."""

    def param(key: str, default: Any = None) -> Any:
        return fields.get(key, default)

    name = param("ModelPackageName")
    group = param("ModelPackageGroupName")
    token = param("ClientToken")
    if group and name:
        raise ValidationError(
            "Both ModelPackageName and ModelPackageGroupName are provided in the input. "
            "Cannot determine which one to use."
        )
    if not group and not name:
        raise ValidationError("Missing ARN.")
    if token and token in state.client_tokens:
        existing = state.client_tokens[token]
        if existing in backend.model_packages:
            return existing
    approval = param("ModelApprovalStatus")
    if group:
        group = _group_name(group)
        if group not in backend.model_package_groups:
            raise ValidationError(
                f"Model Package Group {_group_arn(backend, group)} does not exist."
            )
        version: int | None = _next_version(backend, state, group)
        package_type = "Versioned"
        name = group
        # AWS puts new versions in the registry as pending unless the caller says otherwise.
        approval = approval or "PendingManualApproval"
    else:
        version = None
        package_type = "Unversioned"
        if any(
            p.model_package_name == name and p.model_package_version is None
            for p in backend.model_packages.values()
        ):
            raise ValidationError(
                f"Model Package {resource_arn(backend, 'model-package', name.lower())} "
                "already exists."
            )
    package = ModelPackage(
        model_package_name=name,
        model_package_group_name=group,
        model_package_version=version,
        model_package_description=param("ModelPackageDescription"),
        inference_specification=param("InferenceSpecification"),
        source_algorithm_specification=param("SourceAlgorithmSpecification"),
        validation_specification=param("ValidationSpecification"),
        certify_for_marketplace=param("CertifyForMarketplace", False),
        model_approval_status=approval,
        metadata_properties=param("MetadataProperties"),
        model_metrics=param("ModelMetrics"),
        approval_description=None,
        customer_metadata_properties=param("CustomerMetadataProperties"),
        drift_check_baselines=param("DriftCheckBaselines"),
        domain=param("Domain"),
        task=param("Task"),
        sample_payload_url=param("SamplePayloadUrl"),
        additional_inference_specifications=param("AdditionalInferenceSpecifications"),
        client_token=token,
        region_name=backend.region_name,
        account_id=backend.account_id,
        model_package_type=package_type,
        tags=param("Tags") or [],
    )
    backend.model_package_name_mapping[name] = package.arn
    backend.model_package_name_mapping[package.arn] = package.arn
    backend.model_packages[package.arn] = package
    if token:
        state.client_tokens[token] = package.arn
    pstate = package_state(state, package.arn)
    pstate.extras = {
        key: value for key in PACKAGE_EXTRA_FIELDS if (value := param(key)) is not None
    }
    _apply_script(state, name, pstate)
    return str(package.arn)


# Fields of CreateModelPackage that the extension reads.
CREATE_FIELDS = (
    "ModelPackageName",
    "ModelPackageGroupName",
    "ClientToken",
    "ModelApprovalStatus",
    "ModelPackageDescription",
    "InferenceSpecification",
    "SourceAlgorithmSpecification",
    "ValidationSpecification",
    "CertifyForMarketplace",
    "MetadataProperties",
    "ModelMetrics",
    "CustomerMetadataProperties",
    "DriftCheckBaselines",
    "Domain",
    "Task",
    "SamplePayloadUrl",
    "AdditionalInferenceSpecifications",
    "Tags",
    *PACKAGE_EXTRA_FIELDS,
)


def create_model_package(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    fields = {key: value for key in CREATE_FIELDS if (value := self._get_param(key)) is not None}
    with state.lock:
        return ActionResult({"ModelPackageArn": _new_package(backend, state, fields)})


def register_from_pipeline(backend: SageMakerModelBackend, arguments: dict[str, Any]) -> str:
    """The model package a pipeline's RegisterModel step creates from its (resolved) arguments."""
    state = state_of(backend)
    fields = {k: v for k, v in arguments.items() if k in CREATE_FIELDS}
    fields.pop("ModelPackageName", None)
    fields.pop("ClientToken", None)
    with state.lock:
        return _new_package(backend, state, fields)


def _package_response(
    package: ModelPackage, pstate: PackageState, *, summary: bool = False
) -> dict[str, Any]:
    response = package.gen_response_object()
    response["ModelPackageName"] = package.model_package_name
    response["ModelPackageStatus"] = pstate.status
    if not summary:
        response.update(pstate.extras)
        item: dict[str, Any] = {"Name": package.arn, "Status": "Completed"}
        if pstate.status == "Failed":
            item = {
                "Name": package.arn,
                "Status": "Failed",
                "FailureReason": pstate.failure_reason or "Model package validation failed",
            }
        elif pstate.status in ("Pending", "InProgress"):
            item = {"Name": package.arn, "Status": "InProgress"}
        response["ModelPackageStatusDetails"] = {"ValidationStatuses": [item]}
    else:
        extras = pstate.extras
        for key in ("ModelLifeCycle", "ModelPackageRegistrationType"):
            if key in extras:
                response[key] = extras[key]
    return response


def describe_model_package(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    package = _find_package(backend, self._get_param("ModelPackageName"))
    with state.lock:
        pstate = package_state(state, package.arn)
        if pstate.script:
            pstate.status = pstate.script.popleft()
        return ActionResult(_package_response(package, pstate))


def list_model_packages(self: SageMakerResponse) -> ActionResult:
    body = original_body(self, "list_model_packages")
    backend = self.sagemaker_backend
    state = state_of(backend)
    summaries = []
    for item in body.get("ModelPackageSummaryList", []):
        package = backend.model_packages[item["ModelPackageArn"]]
        summaries.append(
            _package_response(package, package_state(state, package.arn), summary=True)
        )
    body["ModelPackageSummaryList"] = summaries
    return ActionResult(body)


def update_model_package(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    package = _find_package(backend, self._get_param("ModelPackageArn"))
    with state.lock:
        approval = self._get_param("ModelApprovalStatus")
        if approval is not None:
            package.set_model_approval_status(approval)
        description = self._get_param("ApprovalDescription")
        if description is not None:
            package.approval_description = description
        add = self._get_param("CustomerMetadataProperties")
        remove = self._get_param("CustomerMetadataPropertiesToRemove") or []
        if add or remove:
            merged = dict(package.customer_metadata_properties or {})
            merged.update(add or {})
            for key in remove:
                merged.pop(key, None)
            package.customer_metadata_properties = merged or None
        specs = self._get_param("AdditionalInferenceSpecificationsToAdd")
        if specs:
            package.add_additional_inference_specifications(specs)
        inference = self._get_param("InferenceSpecification")
        if inference is not None:
            package.inference_specification = inference
        extras = package_state(state, package.arn).extras
        for key in PACKAGE_EXTRA_FIELDS:
            value = self._get_param(key)
            if value is not None:
                extras[key] = value
        package.modifications_done()
    return ActionResult({"ModelPackageArn": package.arn})


def delete_model_package(self: SageMakerResponse) -> EmptyResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    package = _find_package(backend, self._get_param("ModelPackageName"))
    with state.lock:
        del backend.model_packages[package.arn]
        state.packages.pop(package.arn, None)
        mapping = backend.model_package_name_mapping
        for key in [k for k, v in mapping.items() if v == package.arn]:
            del mapping[key]
        group = package.model_package_group_name
        if group:
            remaining = [
                p for p in backend.model_packages.values() if p.model_package_group_name == group
            ]
            if remaining:
                latest = max(remaining, key=lambda p: p.model_package_version or 0)
                mapping[group] = latest.arn
        state.client_tokens = {t: a for t, a in state.client_tokens.items() if a != package.arn}
    return EmptyResult()


# --- tags ---------------------------------------------------------------------------------------


def _tagged_resource(backend: SageMakerModelBackend, arn: str) -> Any:
    match = _ARN_RE.match(arn or "")
    if match is None:
        raise ValidationError(f"Invalid resource ARN: {arn}")
    if match.group("type") == "model-package":
        package = backend.model_packages.get(arn) or backend.model_packages.get(arn.lower())
        if package is None:
            raise ValidationError(f"Resource {arn} does not exist.")
        if package.tags is None:
            package.tags = []
        return package
    try:
        resource = backend._get_resource_from_arn(arn)
    except (ValueError, AttributeError):
        resource = None
    if resource is None:
        raise ValidationError(f"Resource {arn} does not exist.")
    if getattr(resource, "tags", None) is None:
        resource.tags = []
    return resource


def add_tags(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    resource = _tagged_resource(backend, self._get_param("ResourceArn"))
    new = self._get_param("Tags") or []
    with state_of(backend).lock:
        # A key that is already present gets its value replaced, as AWS does.
        keys = {tag["Key"] for tag in new}
        resource.tags = [t for t in resource.tags if t["Key"] not in keys] + list(new)
    return ActionResult({"Tags": list(new)})


def list_tags(self: SageMakerResponse) -> ActionResult:
    resource = _tagged_resource(self.sagemaker_backend, self._get_param("ResourceArn"))
    return ActionResult({"Tags": list(resource.tags)})


def delete_tags(self: SageMakerResponse) -> EmptyResult:
    backend = self.sagemaker_backend
    resource = _tagged_resource(backend, self._get_param("ResourceArn"))
    keys = set(self._get_param("TagKeys") or [])
    with state_of(backend).lock:
        resource.tags = [t for t in resource.tags if t["Key"] not in keys]
    return EmptyResult()
