"""The Workspace API 2.0 over the workspace's tree: folders, files and notebooks by absolute path.

The tree starts with ``/``, ``/Shared``, ``/Users`` and the fake user's home folder. ``mkdirs``
makes a folder and its parents (an object in the way is ``RESOURCE_ALREADY_EXISTS``); ``import``
writes one object whose parent folder must exist (``RESOURCE_DOES_NOT_EXIST`` "The parent folder
(...) does not exist."), refusing an existing path unless ``overwrite``. Content is base64 in JSON
both ways, at most 10 MB (``MAX_NOTEBOOK_SIZE_EXCEEDED``). ``AUTO`` imports a notebook when the
content starts with the source-notebook header (``# Databricks notebook source`` for Python) and
then drops the extension, as the service does; anything else is a file. ``SOURCE`` needs a
``language`` and makes a notebook at the path as given. ``list`` answers the objects directly
in a folder (``{}`` for an empty one, the object itself for a file or notebook), each as
``get-status`` describes it. A notebook exports (``SOURCE``, ``AUTO``)
as source starting with its language's header, which the service adds when the imported source
had none. Directory imports and exports (``DBC``, ``HTML`` ...) are not served.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from posixpath import dirname, normpath, splitext
from typing import Any

from .context import WorkspaceContext
from .routing import ApiError, Request, Router, already_exists, invalid, not_found

BASE = "/api/2.0/workspace"
MAX_BYTES = 10 * 1024 * 1024
_HEADERS = {
    "PYTHON": "# Databricks notebook source",
    "SQL": "-- Databricks notebook source",
    "SCALA": "// Databricks notebook source",
    "R": "# Databricks notebook source",
}
_EXTENSIONS = {".py": "PYTHON", ".sql": "SQL", ".scala": "SCALA", ".r": "R"}


@dataclass
class WorkspaceObject:
    object_type: str  # DIRECTORY, FILE or NOTEBOOK
    object_id: int
    created_ms: int
    modified_ms: int
    data: bytes = b""
    language: str | None = None


class WorkspaceTree:
    def __init__(self, ctx: WorkspaceContext) -> None:
        self.ctx = ctx
        self.objects: dict[str, WorkspaceObject] = {}
        for folder in ("/", "/Shared", "/Users", f"/Users/{ctx.user}"):
            self.objects[folder] = self._new("DIRECTORY")

    # Out-of-band API.

    def read(self, path: str) -> bytes:
        """A file's or notebook's content."""
        with self.ctx.lock:
            found = self._object(_clean(path))
            if found.object_type == "DIRECTORY":
                raise ValueError(f"{path} is a folder")
            return found.data

    def put(self, path: str, data: bytes) -> None:
        """Write a file as another user would (its parent folders are made)."""
        with self.ctx.lock:
            path = _clean(path)
            self._mkdirs(dirname(path))
            self._write(path, "FILE", data, None)

    def put_notebook(self, path: str, source: bytes, language: str = "PYTHON") -> None:
        """Write a notebook as another user would (its parent folders are made)."""
        with self.ctx.lock:
            path = _clean(path)
            self._mkdirs(dirname(path))
            self._write(path, "NOTEBOOK", source, language)

    def has_notebook(self, path: str) -> bool:
        """Whether a task's ``notebook_path`` (``/Workspace/...`` or the API's path) names a
        notebook."""
        if path.startswith("/Workspace/"):
            path = path.removeprefix("/Workspace")
        with self.ctx.lock:
            found = self.objects.get(_clean(path))
            return found is not None and found.object_type == "NOTEBOOK"

    # REST.

    def register(self, router: Router) -> None:
        router.add("POST", BASE + "/mkdirs", self.mkdirs)
        router.add("POST", BASE + "/import", self.import_)
        router.add("GET", BASE + "/export", self.export)
        router.add("GET", BASE + "/get-status", self.get_status)
        router.add("GET", BASE + "/list", self.list)
        router.add("POST", BASE + "/delete", self.delete)

    def mkdirs(self, req: Request) -> dict[str, Any]:
        self._mkdirs(_clean(req.require("path")))
        return {}

    def import_(self, req: Request) -> dict[str, Any]:
        path = _clean(req.require("path"))
        form = req.arg("format") or "SOURCE"
        language = req.arg("language")
        try:
            data = base64.b64decode(str(req.arg("content") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise invalid("The content is not valid base64.") from None
        if len(data) > MAX_BYTES:
            raise ApiError(
                400, "MAX_NOTEBOOK_SIZE_EXCEEDED", "File size imported is (over 10485760 bytes)"
            )
        if form == "SOURCE":
            if language not in _HEADERS:
                raise invalid("Language must be specified to import a SOURCE notebook.")
            kind = "NOTEBOOK"
        elif form in ("AUTO", "RAW"):
            language = self._notebook_language(path, data) if form == "AUTO" else None
            kind = "NOTEBOOK" if language else "FILE"
            if kind == "NOTEBOOK":
                path = splitext(path)[0]
        else:
            raise invalid(f"The fake workspace does not import the {form} format.")
        parent = dirname(path)
        if self.objects.get(parent, None) is None:
            raise not_found(f"The parent folder ({parent}) does not exist.")
        if self.objects[parent].object_type != "DIRECTORY":
            raise invalid(f"The parent ({parent}) is not a folder.")
        existing = self.objects.get(path)
        if existing is not None and (
            not req.bool_arg("overwrite") or existing.object_type == "DIRECTORY"
        ):
            raise already_exists(f"{path} already exists.", status=400)
        self._write(path, kind, data, language)
        return {}

    def export(self, req: Request) -> dict[str, Any]:
        path = _clean(req.require("path"))
        form = req.arg("format") or "SOURCE"
        found = self._object(path)
        if found.object_type == "DIRECTORY":
            raise invalid("The fake workspace does not export folders.")
        if form not in ("AUTO", "SOURCE", "RAW"):
            raise invalid(f"The fake workspace does not export the {form} format.")
        data = found.data
        if found.object_type == "NOTEBOOK" and found.language in _HEADERS:
            data = _with_header(data, _HEADERS[found.language])
        answer: dict[str, Any] = {"content": base64.b64encode(data).decode("ascii")}
        if found.object_type == "FILE":
            answer["file_type"] = splitext(path)[1].lstrip(".")
        return answer

    def get_status(self, req: Request) -> dict[str, Any]:
        path = _clean(req.require("path"))
        return self._status(path, self._object(path))

    def list(self, req: Request) -> dict[str, Any]:
        path = _clean(req.require("path"))
        found = self._object(path)
        if found.object_type != "DIRECTORY":
            return {"objects": [self._status(path, found)]}
        inside = sorted(p for p in self.objects if p != path and dirname(p) == path)
        if not inside:
            return {}
        return {"objects": [self._status(p, self.objects[p]) for p in inside]}

    @staticmethod
    def _status(path: str, found: WorkspaceObject) -> dict[str, Any]:
        status: dict[str, Any] = {
            "path": path,
            "object_type": found.object_type,
            "object_id": found.object_id,
            "created_at": found.created_ms,
            "modified_at": found.modified_ms,
        }
        if found.object_type != "DIRECTORY":
            status["size"] = len(found.data)
        if found.language:
            status["language"] = found.language
        return status

    def delete(self, req: Request) -> dict[str, Any]:
        path = _clean(req.require("path"))
        found = self._object(path)
        below = [p for p in self.objects if p.startswith(path.rstrip("/") + "/")]
        if found.object_type == "DIRECTORY" and below and not req.bool_arg("recursive"):
            raise ApiError(
                400, "DIRECTORY_NOT_EMPTY", f"Folder ({path}) is not empty. Use recursive delete."
            )
        if path == "/":
            raise invalid("The root folder cannot be deleted.")
        for doomed in [path, *below]:
            del self.objects[doomed]
        return {}

    # Helpers.

    def _new(self, kind: str, data: bytes = b"", language: str | None = None) -> WorkspaceObject:
        now = self.ctx.now_ms()
        number = self.ctx.next_number("workspace-object", start=1000)
        return WorkspaceObject(kind, number, now, now, data, language)

    def _write(self, path: str, kind: str, data: bytes, language: str | None) -> None:
        existing = self.objects.get(path)
        if existing is not None and existing.object_type == kind:
            existing.data, existing.language = data, language
            existing.modified_ms = self.ctx.now_ms()
        else:
            self.objects[path] = self._new(kind, data, language)

    def _mkdirs(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        for depth in range(1, len(parts) + 1):
            folder = "/" + "/".join(parts[:depth])
            found = self.objects.get(folder)
            if found is None:
                self.objects[folder] = self._new("DIRECTORY")
            elif found.object_type != "DIRECTORY":
                raise already_exists(
                    f"Cannot create directory {path} because {folder} is an existing file.",
                    status=400,
                )

    def _object(self, path: str) -> WorkspaceObject:
        found = self.objects.get(path)
        if found is None:
            raise not_found(f"Path ({path}) doesn't exist.")
        return found

    @staticmethod
    def _notebook_language(path: str, data: bytes) -> str | None:
        """The notebook language ``AUTO`` reads from the extension and header (``None``: a file)."""
        language = _EXTENSIONS.get(splitext(path)[1].lower())
        if language is None:
            return None
        first = data.decode("utf-8", "replace").lstrip("\ufeff").split("\n", 1)[0].strip()
        return language if first == _HEADERS[language] else None


def _with_header(data: bytes, header: str) -> bytes:
    """Notebook source as the service exports it: starting with its language's header."""
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    if text.split("\n", 1)[0].strip() == header:
        return data
    return f"{header}\n{text}".encode()


def _clean(path: Any) -> str:
    text = str(path)
    if not text.startswith("/"):
        raise invalid(f"Path ({text}) doesn't start with '/'.")
    if ".." in text.split("/"):
        raise invalid(f"Invalid path: {text}")
    return normpath(text) if text != "/" else "/"
