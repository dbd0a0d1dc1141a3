"""The Files API 2.0 over the workspace's files: upload, download, metadata and directory listing.

Paths are absolute (``/Volumes/...``, ``/Models/...``). Under ``/Models/<catalog>/<schema>/<model>/
<version>/`` are a Unity Catalog model version's files, as MLflow reads and writes them through
the SDK: the version must exist, and its files can be written only while it is
``PENDING_REGISTRATION`` (before ``finalize``). A directory exists while a file is below it (a
model version's directory as long as the version does). Bodies are raw bytes both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import formatdate
from posixpath import normpath
from typing import Any

from .context import WorkspaceContext
from .routing import ApiError, Request, Response, Router, invalid, not_found
from .unity_catalog import PENDING, UnityCatalogModels

FILES = "/api/2.0/fs/files"
DIRECTORIES = "/api/2.0/fs/directories"
PAGE_SIZE = 1000


@dataclass
class StoredFile:
    data: bytes
    modified_ms: int


class WorkspaceFiles:
    def __init__(self, ctx: WorkspaceContext, uc: UnityCatalogModels) -> None:
        self.ctx = ctx
        self.uc = uc
        self.files: dict[str, StoredFile] = {}

    # Out-of-band API.

    def put(self, path: str, data: bytes) -> None:
        """Write a file as another client would (no state check: a legacy model's files)."""
        with self.ctx.lock:
            self.files[_clean(path)] = StoredFile(data, self.ctx.now_ms())

    def read(self, path: str) -> bytes:
        with self.ctx.lock:
            return self._file(_clean(path)).data

    def under(self, directory: str) -> dict[str, bytes]:
        """Every file below ``directory``, by path relative to it."""
        base = _clean(directory).rstrip("/") + "/"
        with self.ctx.lock:
            return {p[len(base) :]: f.data for p, f in self.files.items() if p.startswith(base)}

    # REST.

    def register(self, router: Router) -> None:
        router.add("PUT", FILES + "/{path:path}", self.upload)
        router.add("GET", FILES + "/{path:path}", self.download)
        router.add("HEAD", FILES + "/{path:path}", self.metadata)
        router.add("DELETE", FILES + "/{path:path}", self.delete)
        router.add("GET", DIRECTORIES + "/{path:path}", self.list_directory)
        router.add("HEAD", DIRECTORIES + "/{path:path}", self.directory_metadata)

    def upload(self, req: Request) -> Response:
        path = _clean("/" + req.params["path"])
        self._check_model_path(path, writing=True)
        if path in self.files and not req.bool_arg("overwrite"):
            raise ApiError(409, "ALREADY_EXISTS", f"The file being created already exists: {path}")
        self.files[path] = StoredFile(bytes(req.raw), self.ctx.now_ms())
        return Response(status=204)

    def download(self, req: Request) -> Response:
        path = _clean("/" + req.params["path"])
        self._check_model_path(path, writing=False)
        found = self._file(path)
        return Response(data=found.data, headers=_headers(found))

    def metadata(self, req: Request) -> Response:
        path = _clean("/" + req.params["path"])
        found = self._file(path)
        return Response(
            data=b"", headers={**_headers(found), "Content-Length": str(len(found.data))}
        )

    def delete(self, req: Request) -> Response:
        path = _clean("/" + req.params["path"])
        self._check_model_path(path, writing=True)
        self._file(path)
        del self.files[path]
        return Response(status=204)

    def list_directory(self, req: Request) -> dict[str, Any]:
        directory = _clean("/" + req.params["path"]).rstrip("/")
        if not self._is_directory(directory):
            raise not_found(f"The directory being accessed is not found: {directory}")
        base = directory + "/"
        entries: dict[str, dict[str, Any]] = {}
        for path, stored in self.files.items():
            if not path.startswith(base):
                continue
            name, _, rest = path[len(base) :].partition("/")
            if rest:
                entries.setdefault(
                    name, {"path": f"{base}{name}/", "is_directory": True, "name": name}
                )
            else:
                entries[name] = {
                    "path": path,
                    "is_directory": False,
                    "file_size": len(stored.data),
                    "last_modified": stored.modified_ms,
                    "name": name,
                }
        listed = [entries[n] for n in sorted(entries)]
        size = req.int_arg("page_size", PAGE_SIZE) or PAGE_SIZE
        start = int(req.arg("page_token") or 0)
        answer: dict[str, Any] = {"contents": listed[start : start + size]}
        if start + size < len(listed):
            answer["next_page_token"] = str(start + size)
        return answer

    def directory_metadata(self, req: Request) -> Response:
        directory = _clean("/" + req.params["path"]).rstrip("/")
        if not self._is_directory(directory):
            raise not_found(f"The directory being accessed is not found: {directory}")
        return Response(data=b"")

    # Helpers.

    def _file(self, path: str) -> StoredFile:
        found = self.files.get(path)
        if found is None:
            raise not_found(f"The file being accessed is not found: {path}")
        return found

    def _is_directory(self, directory: str) -> bool:
        if self._model_version_dir(directory):
            return True
        base = directory + "/"
        return any(p.startswith(base) for p in self.files)

    def _model_version_dir(self, directory: str) -> bool:
        parts = directory.strip("/").split("/")
        if len(parts) != 5 or parts[0] != "Models":
            return False
        try:
            self._model_version(parts)
        except ApiError:
            return False
        return True

    def _model_version(self, parts: list[str]) -> Any:
        catalog, schema, model, version = parts[1:5]
        found = self.uc._model(f"{catalog}.{schema}.{model}")
        return self.uc._version(found, version)

    def _check_model_path(self, path: str, *, writing: bool) -> None:
        parts = path.strip("/").split("/")
        if parts[0] != "Models":
            return
        if len(parts) < 6:
            raise invalid(
                f"A model file's path is /Models/<catalog>/<schema>/<model>/<version>/...: {path}"
            )
        version = self._model_version(parts)
        if writing and version.status != PENDING:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                f"Model version {parts[4]} of '{'.'.join(parts[1:4])}' is {version.status}: "
                "its files can only be written before it is finalized.",
            )


def _clean(path: str) -> str:
    if not path.startswith("/") or ".." in path.split("/"):
        raise invalid(f"Invalid path: {path}")
    trailing = "/" if path.endswith("/") and path != "/" else ""
    return normpath(path) + trailing


def _headers(found: StoredFile) -> dict[str, str]:
    return {"Last-Modified": formatdate(found.modified_ms / 1000, usegmt=True)}
