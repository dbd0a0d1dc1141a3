"""Signed checkpoints: the chain's head, signed with a key that the store never holds.

The hash chain proves that no event was changed *unless the whole chain after it was recomputed*,
and anyone who can write to the store can do that. A checkpoint closes the gap: it is the pair
(sequence number, head hash) at a moment, with the time and the key id, signed with an Ed25519
private key kept outside the store, and appended to a file outside the store. Verifying needs only
the public key and that file: every signature must hold, and the chain as stored must reproduce
each checkpointed hash at its sequence number, so a rewritten chain, or one cut below a
checkpoint, is reported even though its links are consistent.

Each line of the checkpoint file is the RFC 8785 JSON of the signed fields plus ``signature``
(base64 of the Ed25519 signature over the RFC 8785 JSON of the signed fields alone).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from mintaka.audit.chain import GENESIS, AuditLog, canonical_bytes
from mintaka.domain.base import Record
from mintaka.errors import Conflict, IntegrityError, ValidationError, invalid_fields
from mintaka.files import fsync_directory

CHECKPOINT_FORMAT = "mintaka-audit-checkpoint/1"
KEY_ENV = "MINTAKA_AUDIT_KEY"
PRIVATE_KEY_FILE = "audit-signing.pem"
PUBLIC_KEY_FILE = "audit-signing.pub"
CHECKPOINTS_FILE = "checkpoints.jsonl"


class Checkpoint(Record):
    """One signed statement: the chain had this head hash at this sequence number."""

    format: str = CHECKPOINT_FORMAT
    seq: int = Field(ge=0)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    at: str
    key_id: str
    signature: str

    def signed_bytes(self) -> bytes:
        """The RFC 8785 JSON of every field but the signature: what the signature covers."""
        return canonical_bytes(self.model_dump(exclude={"signature"}))

    def line(self) -> bytes:
        return canonical_bytes(self.model_dump()) + b"\n"


class CheckpointReport(Record):
    """The outcome of verifying the chain against signed checkpoints."""

    ok: bool
    events: int
    checkpoints: int
    first_bad_seq: int | None = None
    reason: str | None = None


# -- keys --------------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """``ed25519:`` and the first 32 hex digits of sha256 over the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


def generate_keypair(out_dir: Path) -> tuple[Path, Path]:
    """Write a new signing key (``audit-signing.pem``, mode 0600) and its public key."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path = out_dir / PRIVATE_KEY_FILE
    public_path = out_dir / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise Conflict(f"{path} already exists; refusing to replace a signing key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, private_pem, 0o600)
    _write_new(public_path, public_pem, 0o644)
    return private_path, public_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, mode)  # the umask may have narrowed it; never widened beyond ``mode``


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValidationError(f"cannot read an Ed25519 private key from {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValidationError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read an Ed25519 public key from {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValidationError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def private_key_path(option: Path | None) -> Path:
    """The signing key: the given path, else ``MINTAKA_AUDIT_KEY``."""
    if option is not None:
        return option
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV])
    raise ValidationError(f"no signing key: pass --key PATH or set {KEY_ENV}")


def ensure_outside(path: Path, store_dirs: Iterable[Path], what: str) -> None:
    """Refuse ``path`` inside a store directory: whoever can rewrite the store must not reach it."""
    resolved = path.resolve()
    for directory in store_dirs:
        if resolved.is_relative_to(directory.resolve()):
            raise ValidationError(
                f"the {what} {path} is inside the store directory {directory}; keep it elsewhere"
            )


# -- signing and verifying ---------------------------------------------------------------------


def sign(private_key: Ed25519PrivateKey, *, seq: int, head_hash: str, at: datetime) -> Checkpoint:
    unsigned = Checkpoint(
        seq=seq,
        hash=head_hash,
        at=at.isoformat(),
        key_id=key_id(private_key.public_key()),
        signature="",
    )
    signature = private_key.sign(unsigned.signed_bytes())
    return unsigned.model_copy(update={"signature": base64.b64encode(signature).decode("ascii")})


def checkpoint(
    log: AuditLog,
    private_key: Ed25519PrivateKey,
    *,
    at: datetime,
    prior: Sequence[Checkpoint] = (),
) -> Checkpoint:
    """Sign the current head, after verifying the chain in the same snapshot.

    A broken chain is refused: signing its head would vouch for the break. So is a chain that
    does not reproduce the head of an earlier checkpoint in ``prior`` (each signature checked
    with this key's public half): a chain rewritten from end to end has consistent links, and
    only those checkpoints tell it from the original.
    """
    try:
        anchors = _anchors_of(prior, private_key.public_key())
    except IntegrityError as exc:
        raise IntegrityError(f"{exc}; refusing to sign the chain's head") from exc
    with log.store.read() as conn:
        report, last_hash = log.verify_in(conn, anchors)
    if not report.ok:
        raise IntegrityError(
            f"the audit chain is broken at sequence {report.first_bad_seq} ({report.reason}); "
            "refusing to sign its head"
        )
    return sign(private_key, seq=report.events, head_hash=last_hash, at=at)


def checkpoint_into(
    path: Path, log: AuditLog, private_key: Ed25519PrivateKey, *, at: datetime
) -> Checkpoint:
    """Sign the current head and append it to the checkpoint file ``path``, after checking the
    chain against the checkpoints the file already holds (see :func:`checkpoint`)."""
    prior = _parsed(path, _whole_lines(path)) if path.exists() else []
    entry = checkpoint(log, private_key, at=at, prior=prior)
    append(path, entry)
    return entry


def _anchors_of(entries: Sequence[Checkpoint], public_key: Ed25519PublicKey) -> dict[int, str]:
    """The head hash of each checkpoint by sequence number; a checkpoint whose signature does
    not hold with ``public_key``, or that contradicts an earlier one, is an ``IntegrityError``
    (``checkpoint N (sequence S) rejected: ...``)."""
    expected_id = key_id(public_key)
    anchors: dict[int, str] = {}
    for number, entry in enumerate(entries, start=1):
        problem = _bad_signature(entry, public_key, expected_id)
        if problem is None and anchors.get(entry.seq, entry.hash) != entry.hash:
            problem = f"contradicts an earlier checkpoint at sequence {entry.seq}"
        if problem is not None:
            raise IntegrityError(f"checkpoint {number} (sequence {entry.seq}) rejected: {problem}")
        anchors[entry.seq] = entry.hash
    return anchors


def append(path: Path, entry: Checkpoint) -> None:
    """Append one line to the checkpoint file and fsync it (and its directory when new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # A last line left without its newline (a write cut short, an edit) stays a line of its
        # own: the new checkpoint is not glued onto it and lost with it.
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        os.write(fd, (b"\n" if torn else b"") + entry.line())
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_directory(path.parent)


def read(path: Path) -> list[Checkpoint]:
    """Every checkpoint in the file, oldest first; a malformed line is an ``IntegrityError``."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ValidationError(f"cannot read checkpoints from {path}: {exc}") from exc
    return _parsed(path, lines)


def _whole_lines(path: Path) -> list[bytes]:
    """The lines of the checkpoint file but a last one left without its newline (a write cut
    short, which :func:`append` keeps apart from the next checkpoint)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read checkpoints from {path}: {exc}") from exc
    return data[: data.rfind(b"\n") + 1].splitlines()


def _parsed(path: Path, lines: list[bytes]) -> list[Checkpoint]:
    """The checkpoints of ``lines`` of ``path``; a malformed line is an ``IntegrityError``."""
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(Checkpoint.model_validate(json.loads(line)))
        except (ValueError, PydanticValidationError, RecursionError) as exc:
            # RecursionError: JSON nested too deeply for Python's reader, never a checkpoint.
            raise IntegrityError(
                f"{path} line {number} is not a checkpoint: {invalid_fields(exc)}"
            ) from exc
    return entries


def _bad_signature(entry: Checkpoint, public_key: Ed25519PublicKey, expected_id: str) -> str | None:
    if entry.format != CHECKPOINT_FORMAT:
        return f"unknown checkpoint format {entry.format!r}"
    if entry.key_id != expected_id:
        return f"signed by key {entry.key_id}, not by {expected_id}"
    try:
        signature = base64.b64decode(entry.signature, validate=True)
        public_key.verify(signature, entry.signed_bytes())
    except (InvalidSignature, binascii.Error, ValueError):
        return "signature does not verify with the public key"
    if entry.seq == 0 and entry.hash != GENESIS:
        return "a checkpoint at sequence 0 must carry the genesis hash"
    return None


def verify(
    log: AuditLog, public_key: Ed25519PublicKey, entries: list[Checkpoint]
) -> CheckpointReport:
    """Check every signature, then the chain with each checkpointed head as an anchor. No
    checkpoint at all is a failure: an emptied checkpoint file would otherwise vouch for a
    chain rewritten from end to end."""
    if not entries:
        return CheckpointReport(
            ok=False,
            events=0,
            checkpoints=0,
            reason="no signed checkpoint to check: write one with `mintaka audit checkpoint`",
        )
    try:
        anchors = _anchors_of(entries, public_key)
    except IntegrityError as exc:
        return CheckpointReport(ok=False, events=0, checkpoints=len(entries), reason=str(exc))
    report = log.verify(anchors)
    return CheckpointReport(
        ok=report.ok,
        events=report.events,
        checkpoints=len(entries),
        first_bad_seq=report.first_bad_seq,
        reason=report.reason,
    )
