"""The registry on SageMaker: a model package group per model, a model package per version.

- A version's Mintaka id, artifact digest, flavor and lifecycle stage are kept in the package's
  ``CustomerMetadataProperties`` (``mintaka_id``, ``mintaka_digest``, ``mintaka_flavor``,
  ``mintaka_stage``); its tags are the package's own tags.
- Aliases are tags on the group (``mintaka:alias:<alias>`` = version number): one tag write moves
  an alias atomically, and a version's tags stay exactly the user's.
- Core's approval is projected onto ``ModelApprovalStatus``.
- ``ClientToken`` is the request's idempotency key, so a retried create returns the package the
  first one made; an existing group is "already done", not an error.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from mintaka.domain.registry import (
    ApprovalStatus,
    BackendVersion,
    Stage,
    VersionOrigin,
    VersionRequest,
)
from mintaka.errors import Conflict, MintakaError, NotFound, ValidationError
from mintaka_sagemaker.artifacts import (
    TARBALL_SUFFIXES,
    ModelData,
    artifact_key,
    model_data_of,
    spooled_tarball,
    unpack_tarball,
)
from mintaka_sagemaker.aws import SYSTEM_TAG_PREFIXES, AwsCalls, request_token, tag_list
from mintaka_sagemaker.errors import is_already_exists

META_ID = "mintaka_id"
META_DIGEST = "mintaka_digest"
META_FLAVOR = "mintaka_flavor"
META_STAGE = "mintaka_stage"
META_SERVED_BY = "mintaka_served_by"  # a package registered from what a SageMaker Model serves
META_SERVED_IDENTITY = "mintaka_served_identity"  # the sha256 of that slot's identity
MANAGED_TAG = "mintaka:managed"
ALIAS_TAG = "mintaka:alias:"

APPROVAL_TO_SAGEMAKER = {
    ApprovalStatus.PENDING: "PendingManualApproval",
    ApprovalStatus.APPROVED: "Approved",
    ApprovalStatus.REJECTED: "Rejected",
}
APPROVAL_FROM_SAGEMAKER = {v: k for k, v in APPROVAL_TO_SAGEMAKER.items()}
_CLIENT_TOKEN = re.compile(r"^[a-zA-Z0-9-]{1,36}$")


def _origin(metadata: Mapping[str, Any]) -> VersionOrigin | None:
    """A package's ``MetadataProperties`` (GeneratedBy, CommitId, Repository), where set."""
    origin = VersionOrigin(
        produced_by=metadata.get("GeneratedBy") or None,
        code_commit=metadata.get("CommitId") or None,
        repository=metadata.get("Repository") or None,
    )
    return origin if origin.attrs() else None


def package_container(described: Mapping[str, Any]) -> dict[str, Any]:
    """A described model package's (first) inference container; empty when it has none."""
    containers = (described.get("InferenceSpecification") or {}).get("Containers") or [{}]
    return dict(containers[0])


def package_data(described: Mapping[str, Any]) -> ModelData | None:
    """Where a described model package's model data is: its container's, else its
    ``SourceUri`` (a package Mintaka registered without an inference image)."""
    data = model_data_of(package_container(described))
    if data is None and described.get("SourceUri"):
        uri = str(described["SourceUri"])
        data = ModelData(uri, tarball=uri.endswith(TARBALL_SUFFIXES))
    return data


def package_version(arn: str) -> tuple[str, int] | None:
    """The group and version number in a versioned model package's ARN
    (``...:model-package/<group>/<version>``); None when the ARN has another form."""
    group, _, number = arn.rpartition(":model-package/")[2].rpartition("/")
    return (group, int(number)) if group and number.isdigit() else None


class _DirectoryLayout:
    """The files, and the folders above them, that the objects under a prefix make, so that
    two keys reading as one path (``a/./b`` and ``a/b``), or as a file and a folder (``a`` and
    ``a/b``), are told apart instead of one silently replacing or breaking the other."""

    def __init__(self) -> None:
        self.files: dict[PurePosixPath, str] = {}
        self.folders: dict[PurePosixPath, str] = {}

    def clash(self, path: PurePosixPath, key: str) -> str | None:
        """The key already placed where ``key`` (at ``path``) cannot go beside it; None, with
        ``path`` placed, when there is none."""
        taken = self.files.get(path) or self.folders.get(path)
        taken = taken or next((self.files[p] for p in path.parents if p in self.files), None)
        if taken is not None:
            return taken
        self.files[path] = key
        for parent in path.parents:
            self.folders.setdefault(parent, key)
        return None


def _prefix_base(prefix: str) -> str:
    """An S3 key prefix as the "folder" whose objects it names (``models/a`` is ``models/a/``)."""
    return prefix if not prefix or prefix.endswith("/") else f"{prefix}/"


def _prefix_file(bucket: str, base: str, key: str) -> PurePosixPath | None:
    """Where an object listed under the prefix ``base`` goes in the model directory: its path
    below the prefix, or None for a "folder" marker (a key ending ``/``). A key naming no file
    there (``<prefix>.``) or one that would land outside it (``..``, or a ``/`` right after the
    prefix) is refused. Reading and re-listing the prefix both take keys through here, so they
    agree on which objects are the model's."""
    if key.endswith("/"):
        return None
    relative = PurePosixPath(key[len(base) :])
    if not relative.parts:
        raise ValidationError(
            f"[sagemaker] s3://{bucket}/{key} names no file below the prefix s3://{bucket}/{base}"
        )
    if relative.is_absolute() or ".." in relative.parts:
        raise ValidationError(
            f"[sagemaker] s3://{bucket}/{key} would land outside the model directory"
        )
    return relative


def _objects_identity(objects: list[tuple[Any, ...]]) -> str:
    """S3 objects read or listed (key, ETag, and VersionId where read for one object) as one
    string, the same whatever the order they came in."""
    return json.dumps(sorted([str(part) for part in item] for item in objects))


def client_token(idempotency_key: str) -> str:
    """``ClientToken`` accepts 1-36 of ``[a-zA-Z0-9-]``; other keys are hashed into that form,
    keeping 128 bits of the key's sha256 so that two keys are never one token (SageMaker would
    answer the second create with the package the first one made)."""
    if _CLIENT_TOKEN.match(idempotency_key):
        return idempotency_key
    return request_token(idempotency_key)


class SageMakerRegistry(AwsCalls):
    """Registry, aliases, tags, stages, approval and version deletion."""

    # -- names and ARNs ---------------------------------------------------------------------------

    # A Mintaka model name is its group's name unless ``model_names`` maps it to another.

    def _group_arn(self, name: str) -> str:
        return self._arn(f"model-package-group/{self.settings.group_of(name)}")

    def _package_arn(self, name: str, version: int) -> str:
        return self._arn(f"model-package/{self.settings.group_of(name)}/{version}")

    def _describe_group(self, name: str) -> dict[str, Any]:
        try:
            return self._sm(
                "describe_model_package_group", ModelPackageGroupName=self.settings.group_of(name)
            )
        except NotFound:
            raise NotFound(f"[sagemaker] model {name!r} (model package group) not found") from None

    def _describe_package(self, name: str, version: int) -> dict[str, Any]:
        try:
            return self._sm(
                "describe_model_package", ModelPackageName=self._package_arn(name, version)
            )
        except NotFound:
            self._describe_group(name)
            raise NotFound(f"[sagemaker] version {name}:{version} not found") from None

    # -- models and versions ----------------------------------------------------------------------

    def ensure_model(self, name: str, description: str = "") -> dict[str, str]:
        params: dict[str, Any] = {
            "ModelPackageGroupName": self.settings.group_of(name),
            "Tags": tag_list({MANAGED_TAG: "true"}),
        }
        if description:
            params["ModelPackageGroupDescription"] = description[:1024]
        try:
            arn = self._sm("create_model_package_group", **params)["ModelPackageGroupArn"]
        except Conflict as exc:
            if not is_already_exists(exc):
                raise
            arn = self._describe_group(name)["ModelPackageGroupArn"]
        return {"model_package_group": str(arn)}

    def _upload_artifact(self, request: VersionRequest) -> tuple[str, bool]:
        """Upload the artifact unless its content-addressed object exists; (S3 URI, uploaded)."""
        bucket = self.settings.require_bucket()
        key = artifact_key(self.settings.key_prefix, request.artifact_digest)
        uri = f"s3://{bucket}/{key}"
        try:
            self._call("s3", "head_object", Bucket=bucket, Key=key)
            return uri, False
        except NotFound:
            pass
        with spooled_tarball(Path(request.artifact_path)) as body:
            self._call(
                "s3",
                "put_object",
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType="application/gzip",
                Metadata={"mintaka-digest": request.artifact_digest},
            )
        return uri, True

    def create_version(self, request: VersionRequest) -> BackendVersion:
        """Upload the artifact unless it is there, then create the package. The answer is built
        from the request and the package's ARN: a new version has no aliases or stage yet."""
        uri, uploaded = self._upload_artifact(request)
        params: dict[str, Any] = {
            "ModelPackageGroupName": self.settings.group_of(request.name),
            "ClientToken": client_token(request.idempotency_key),
            "ModelApprovalStatus": APPROVAL_TO_SAGEMAKER[ApprovalStatus.PENDING],
            "CustomerMetadataProperties": {
                META_ID: request.mintaka_id,
                META_DIGEST: request.artifact_digest,
                META_FLAVOR: request.flavor.value,
            },
        }
        if request.description:
            params["ModelPackageDescription"] = request.description[:1024]
        if request.tags:
            params["Tags"] = tag_list(request.tags)
        if self.settings.image_uri:
            params["InferenceSpecification"] = {
                "Containers": [{"Image": self.settings.image_uri, "ModelDataUrl": uri}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            }
        else:
            params["SourceUri"] = uri
        try:
            arn = str(self._sm("create_model_package", **params)["ModelPackageArn"])
        except MintakaError:  # a missing group is SageMaker's NotFound, naming the group
            if uploaded:  # leave nothing behind that no version refers to
                self._forget_artifact(uri)
            raise
        made = package_version(arn)
        if made is None or made[0].lower() != self.settings.group_of(request.name).lower():
            if uploaded:
                self._forget_artifact(uri)
            raise Conflict(
                f"[sagemaker] idempotency key {request.idempotency_key!r} already made {arn}, "
                f"not a version of {request.name!r}"
            )
        return BackendVersion(
            name=request.name,
            version=made[1],
            artifact_uri=uri,
            artifact_digest=request.artifact_digest,
            tags=dict(request.tags),
            approval=ApprovalStatus.PENDING,
            mintaka_id=request.mintaka_id,
            backend_ids={
                "model_package": arn,
                "model_package_group": self.settings.group_of(request.name),
            },
            extra={
                "approval_status": APPROVAL_TO_SAGEMAKER[ApprovalStatus.PENDING],
                "flavor": request.flavor.value,
            },
        )

    def fetch_artifact(self, name: str, version: int, into: Path) -> Path:
        """The package's model data from S3: a ``tar.gz`` unpacked, any other object as a file,
        and an uncompressed ``ModelDataSource`` prefix as the directory of its objects."""
        return self._read_package_data(name, version, into)[0]

    def _read_package_data(self, name: str, version: int, into: Path) -> tuple[Path, str]:
        """``fetch_artifact``'s read, with the identity of the S3 objects read
        (``_read_model_data``)."""
        described = self._describe_package(name, version)
        return self._read_model_data(package_data(described), f"version {name}:{version}", into)

    def _read_model_data(self, data: ModelData | None, what: str, into: Path) -> tuple[Path, str]:
        """Model data held in S3 into ``into`` (a ``tar.gz`` unpacked, any other object as a
        file, and an uncompressed ``ModelDataSource`` prefix as the directory of its objects),
        and the identity of the objects read, as ``_held_identity`` reads it: an object
        overwritten at its key has another."""
        bucket, key = self._model_data_location(data, what)
        if data is not None and data.prefix:
            return self._download_prefix(bucket, key, into / "model")
        got = self._call("s3", "get_object", Bucket=bucket, Key=key)
        held = _objects_identity([(key, got.get("ETag"), got.get("VersionId"))])
        with got["Body"] as body, tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as local:
            shutil.copyfileobj(body, local, 1024 * 1024)
            local.seek(0)
            if data is not None and data.tarball:
                return unpack_tarball(local, into), held
            target = into / key.rsplit("/", 1)[-1]
            with target.open("wb") as out:
                shutil.copyfileobj(local, out, 1024 * 1024)
        return target, held

    def _held_identity(self, data: ModelData | None, what: str) -> str:
        """The identity of the S3 objects holding ``data`` now, as ``_read_model_data`` gives
        it for the objects it read: each object's key, ETag and (in a versioned bucket, for one
        object) VersionId, so bytes written again at the same key are told apart."""
        bucket, key = self._model_data_location(data, what)
        if data is not None and data.prefix:
            base = _prefix_base(key)
            return _objects_identity(
                [
                    (str(item["Key"]), item.get("ETag"))
                    for page in self._pages("s3", "list_objects_v2", Bucket=bucket, Prefix=base)
                    for item in page.get("Contents") or []
                    if _prefix_file(bucket, base, str(item["Key"])) is not None
                ]
            )
        head = self._call("s3", "head_object", Bucket=bucket, Key=key)
        return _objects_identity([(key, head.get("ETag"), head.get("VersionId"))])

    @staticmethod
    def _model_data_location(data: ModelData | None, what: str) -> tuple[str, str]:
        """The bucket and key (or key prefix) of model data held in S3; ``NotFound`` for model
        data that is not, or a URI naming no object. A single object read as a file keeps the
        last segment of its key as the file's name, so one whose name is ``.`` or ``..`` (no
        file, or the folder above) is refused with ``ValidationError`` before anything is read."""
        if data is None or not data.uri.startswith("s3://"):
            raise NotFound(
                f"[sagemaker] {what} names no S3 model data: {data.uri if data else ''!r}"
            )
        bucket, _, key = data.uri.removeprefix("s3://").partition("/")
        if not data.prefix and (not bucket or not key or key.endswith("/")):
            raise NotFound(f"[sagemaker] {what}: {data.uri} is not an S3 object")
        if not data.prefix and not data.tarball and key.rsplit("/", 1)[-1] in {".", ".."}:
            raise ValidationError(
                f"[sagemaker] {what}: {data.uri} names no file (the last segment of its key is "
                "the name the file would have); copy it to a key naming a file"
            )
        return bucket, key

    def _download_prefix(self, bucket: str, prefix: str, target: Path) -> tuple[Path, str]:
        """Every object under ``s3://bucket/prefix/`` into ``target``, at its path below the
        prefix, and the identity of the objects read; a key naming no file there, or one that
        would land outside ``target``, is refused (``_prefix_file``)."""
        base = _prefix_base(prefix)
        target.mkdir()
        read: list[tuple[str, Any]] = []
        layout = _DirectoryLayout()
        for page in self._pages("s3", "list_objects_v2", Bucket=bucket, Prefix=base):
            for item in page.get("Contents") or []:
                key = str(item["Key"])
                relative = _prefix_file(bucket, base, key)
                if relative is None:
                    continue
                clash = layout.clash(relative, key)
                if clash is not None:
                    raise ValidationError(
                        f"[sagemaker] s3://{bucket}/{clash} and s3://{bucket}/{key} cannot both "
                        "be files of one model directory (one names a file where the other "
                        "needs a folder, or both the same file)"
                    )
                path = target.joinpath(*relative.parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                got = self._call("s3", "get_object", Bucket=bucket, Key=key)
                with got["Body"] as body, path.open("wb") as out:
                    shutil.copyfileobj(body, out, 1024 * 1024)
                read.append((key, got.get("ETag")))
        if not read:
            raise NotFound(f"[sagemaker] no model data under s3://{bucket}/{base}")
        return target, _objects_identity(read)

    def _forget_artifact(self, uri: str) -> None:
        key = uri.removeprefix(f"s3://{self.settings.bucket}/")
        with contextlib.suppress(MintakaError):
            self._call("s3", "delete_object", Bucket=self.settings.bucket, Key=key)

    def _version(
        self, name: str, described: Mapping[str, Any], aliases: Mapping[str, int]
    ) -> BackendVersion:
        number = int(described["ModelPackageVersion"])
        arn = str(described["ModelPackageArn"])
        meta = dict(described.get("CustomerMetadataProperties") or {})
        data = package_data(described)
        uri = data.uri if data else ""
        tags = {k: v for k, v in self._tags(arn).items() if not k.startswith(SYSTEM_TAG_PREFIXES)}
        stage = str(meta.get(META_STAGE, ""))
        approval = APPROVAL_FROM_SAGEMAKER.get(str(described.get("ModelApprovalStatus")))
        return BackendVersion(
            name=name,
            version=number,
            artifact_uri=str(uri),
            artifact_digest=meta.get(META_DIGEST),
            aliases=tuple(sorted(a for a, v in aliases.items() if v == number)),
            tags=tags,
            stage=Stage(stage) if stage in {s.value for s in Stage} else None,
            approval=approval,
            mintaka_id=meta.get(META_ID),
            backend_ids={"model_package": arn, "model_package_group": self.settings.group_of(name)},
            origin=_origin(described.get("MetadataProperties") or {}),
            extra={
                "status": str(described.get("ModelPackageStatus", "")),
                "approval_status": str(described.get("ModelApprovalStatus", "")),
                "flavor": meta.get(META_FLAVOR, ""),
            },
        )

    def get_version(self, name: str, version: int) -> BackendVersion:
        described = self._describe_package(name, version)  # the group exists if the package does
        return self._version(name, described, self._alias_tags(name))

    def _version_numbers(self, name: str) -> list[int]:
        numbers: list[int] = []
        for page in self._pages(
            "sagemaker",
            "list_model_packages",
            ModelPackageGroupName=self.settings.group_of(name),
            ModelPackageType="Versioned",
        ):
            numbers += [
                int(s["ModelPackageVersion"])
                for s in page.get("ModelPackageSummaryList", [])
                if s.get("ModelPackageVersion") is not None
            ]
        return sorted(numbers)

    def list_versions(self, name: str) -> list[BackendVersion]:
        aliases = self.get_aliases(name)  # also raises NotFound for a missing model
        found: list[BackendVersion] = []
        for number in self._version_numbers(name):
            try:
                described = self._describe_package(name, number)
            except NotFound:  # deleted while listing
                continue
            found.append(self._version(name, described, aliases))
        return found

    def list_models(self) -> list[str]:
        names: list[str] = []
        for page in self._pages("sagemaker", "list_model_package_groups"):
            names += [
                self.settings.name_of(g["ModelPackageGroupName"])
                for g in page.get("ModelPackageGroupSummaryList", [])
            ]
        return sorted(names)

    # -- aliases (emulated: tags on the group) ----------------------------------------------------

    def get_aliases(self, name: str) -> dict[str, int]:
        self._describe_group(name)  # NotFound for a missing model, whatever ListTags would say
        return self._alias_tags(name)

    def _alias_tags(self, name: str) -> dict[str, int]:
        aliases: dict[str, int] = {}
        for key, value in self._tags(self._group_arn(name)).items():
            if key.startswith(ALIAS_TAG) and value.isdigit():
                aliases[key.removeprefix(ALIAS_TAG)] = int(value)
        return aliases

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._describe_package(name, version)
        self._sm(
            "add_tags",
            ResourceArn=self._group_arn(name),
            Tags=tag_list({ALIAS_TAG + alias: str(version)}),
        )

    def delete_alias(self, name: str, alias: str) -> None:
        if alias not in self.get_aliases(name):
            raise NotFound(f"[sagemaker] alias {name}@{alias} not found")
        self._sm("delete_tags", ResourceArn=self._group_arn(name), TagKeys=[ALIAS_TAG + alias])

    # -- tags, stage, approval, deletion ----------------------------------------------------------

    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        self._describe_package(name, version)
        if tags:
            self._sm("add_tags", ResourceArn=self._package_arn(name, version), Tags=tag_list(tags))

    def delete_tag(self, name: str, version: int, key: str) -> None:
        self._describe_package(name, version)
        self._sm("delete_tags", ResourceArn=self._package_arn(name, version), TagKeys=[key])

    def set_stage(self, name: str, version: int, stage: Stage) -> None:
        self._describe_package(name, version)
        arn = self._package_arn(name, version)
        if stage is Stage.NONE:
            self._sm(
                "update_model_package",
                ModelPackageArn=arn,
                CustomerMetadataPropertiesToRemove=[META_STAGE],
            )
        else:
            self._sm(
                "update_model_package",
                ModelPackageArn=arn,
                CustomerMetadataProperties={META_STAGE: stage.value},
            )

    def set_approval(self, name: str, version: int, status: ApprovalStatus) -> None:
        self._describe_package(name, version)
        self._sm(
            "update_model_package",
            ModelPackageArn=self._package_arn(name, version),
            ModelApprovalStatus=APPROVAL_TO_SAGEMAKER[status],
        )

    def delete_version(self, name: str, version: int) -> None:
        self._describe_package(name, version)
        self._sm("delete_model_package", ModelPackageName=self._package_arn(name, version))
        stale = [a for a, v in self.get_aliases(name).items() if v == version]
        if stale:
            self._sm(
                "delete_tags",
                ResourceArn=self._group_arn(name),
                TagKeys=[ALIAS_TAG + a for a in stale],
            )
