"""Model artifacts in S3: one reproducible ``model.tar.gz`` per artifact digest.

SageMaker hosting expects ``ModelDataUrl`` to name a gzipped tar, so that is what Mintaka stores:
every file of the artifact directory (sorted, mtime 0, owner 0, mode 0644, gzip without a
timestamp), at ``s3://<bucket>/<prefix>/artifacts/<sha256 hex>/model.tar.gz``. The key is
content-addressed, so uploading the same bytes twice (a retry, the same model registered under two
names) writes the same object, and an object that is already there is not uploaded again.
"""

from __future__ import annotations

import gzip
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mintaka.errors import ValidationError

TARBALL_SUFFIXES = (".tar.gz", ".tgz")


@dataclass(frozen=True)
class ModelData:
    """Where a SageMaker container's model data is: one S3 object (``ModelDataUrl``, or a
    ``ModelDataSource`` naming an object), or every object under an S3 prefix (an uncompressed
    ``ModelDataSource`` of type ``S3Prefix``, as large models are deployed)."""

    uri: str
    prefix: bool = False  # every object under ``uri``
    tarball: bool = False  # a gzipped tar, whatever its name


def model_data_of(container: Mapping[str, Any]) -> ModelData | None:
    """The model data a container (of a Model or a model package) names; None when it names
    none (a model built into its image). A ``ModelDataSource`` object is a tarball exactly when
    its ``CompressionType`` says ``Gzip`` (SageMaker copies an uncompressed one into the
    container as it is, whatever its name); only where that is not stated (``ModelDataUrl``)
    does the name's suffix decide."""
    url = container.get("ModelDataUrl")
    if url:
        return ModelData(str(url), tarball=str(url).endswith(TARBALL_SUFFIXES))
    source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
    uri = str(source.get("S3Uri") or "")
    if not uri:
        return None
    if source.get("S3DataType") == "S3Prefix":
        return ModelData(uri, prefix=True)
    compression = source.get("CompressionType")
    gzipped = compression == "Gzip" if compression else uri.endswith(TARBALL_SUFFIXES)
    return ModelData(uri, tarball=gzipped)


def write_tarball(source: Path, out: IO[bytes]) -> None:
    """Write ``source`` (a directory, or one file) as a byte-reproducible tar.gz into ``out``."""
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    root = source if source.is_dir() else source.parent
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for path in files:
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size = path.stat().st_size
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)


def artifact_key(prefix: str, digest: str) -> str:
    hex_digest = digest.removeprefix("sha256:")
    return "/".join(p for p in (prefix, "artifacts", hex_digest, "model.tar.gz") if p)


def spooled_tarball(source: Path) -> IO[bytes]:
    """The tarball in a temporary file (kept in memory below 8 MiB), rewound for upload."""
    out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    write_tarball(source, out)
    out.seek(0)
    return out


def unpack_tarball(body: IO[bytes], into: Path) -> Path:
    """Unpack a model ``tar.gz`` into ``into/model`` and return that directory.

    Only regular files and directories are taken, and none may leave the directory (tarfile's
    ``data`` filter): a model archive from an unmanaged version is not trusted.
    """
    target = into / "model"
    target.mkdir()
    try:
        with tarfile.open(fileobj=body, mode="r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValidationError(f"[sagemaker] the model archive cannot be unpacked: {exc}") from exc
    if not any(p.is_file() for p in target.rglob("*")):
        raise ValidationError("[sagemaker] the model archive holds no files")
    return target
