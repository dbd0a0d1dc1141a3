"""Keep secrets out of everything Mintaka writes for people: evidence packs, CLI output, logs.

Three rules, applied together:

1. **By key**: the value of a mapping key that names a secret (token, password, secret,
   credential, ``*_key``, authorization, connection string, ...) is replaced whole.
2. **By shape**: passwords in URLs (``scheme://user:***@host``, as SQLAlchemy's
   ``render_as_string(hide_password=True)`` shows them), ``password=...``-style assignments in
   text, and well-known token formats (``sk-...``, ``ghp_...``, ``AKIA...``, JWTs, bearer tokens,
   PEM private keys).
3. **By value**: every secret value Mintaka can see (environment variables and backend settings
   whose names look secret, ``SecretStr`` fields, URL passwords) is scrubbed wherever it appears,
   even inside free text such as an exception's justification.

:class:`RedactingFilter` applies the same rules to log records (message, arguments, traceback),
so DEBUG logging (SQLAlchemy echoes statement parameters at that level) leaks nothing either.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretBytes, SecretStr

if TYPE_CHECKING:
    from mintaka.platform import Platform

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would scrub half of any text

_SECRET_WORDS = (
    r"token|passw(?:or)?d|secret|credential|api[_.-]?key|access[_-]?key|account[_-]?key|"
    r"authorization|cookie|bearer|conn(?:ection)?[_.-]?str(?:ing)?|private[_.-]?key"
)
"""The words that make a key name a secret wherever they appear in it."""
_SECRET_KEY = re.compile(rf"(?i)({_SECRET_WORDS}|[_.-]key$)")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s\"']*):(?P<pw>[^@\s\"']+)@")
# ``key=value`` or ``key: value`` in free text, for every key ``_SECRET_KEY`` calls secret (a key
# ending in ``_key`` too); an HTTP authorization scheme before the value stays readable.
_ASSIGNMENT = re.compile(
    rf"(?i)(?P<key>\b[\w.-]*(?:{_SECRET_WORDS}|[_.-]key)s?\b\"?\s*[=:]\s*\"?"
    r"(?:(?:basic|bearer|digest|negotiate)\s+)?)(?P<value>[^\s\"',;&}]+)"
)
_TOKEN_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:sk|rk|pk)[-_](?:live[-_]|test[-_])?[A-Za-z0-9_-]{16,}"
    r"|(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{20,}"
    r"|(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])"
    r"|(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|(?<![A-Za-z0-9])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/-]{12,}=*"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
    re.DOTALL,
)


def looks_secret(key: str) -> bool:
    """Whether a setting, variable or field named ``key`` holds a secret."""
    return bool(_SECRET_KEY.search(key))


class Redactor:
    """Scrubs text and nested data; build it with the secret values it must know about."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        known = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        self.secrets: tuple[str, ...] = tuple(sorted(known, key=lambda s: (-len(s), s)))

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()
    ) -> Redactor:
        """Know every environment value whose variable name looks secret, and URL passwords."""
        env = os.environ if environ is None else environ
        found = [v for k, v in env.items() if looks_secret(k)]
        found += [m.group("pw") for v in env.values() for m in _URL_PASSWORD.finditer(v)]
        return cls([*found, *extra])

    @classmethod
    def for_platform(cls, platform: Platform) -> Redactor:
        """The environment's secrets plus the platform's: backend settings and the store URL."""
        found: list[str] = list(_secret_values(platform.config.backend_settings))
        found += list(_secret_values(getattr(platform.backend, "settings", None)))
        for url in (platform.store.url, platform.config.store_url or ""):
            found += [m.group("pw") for m in _URL_PASSWORD.finditer(url)]
        return cls.from_environment(extra=found)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        value = _URL_PASSWORD.sub(r"\g<head>:***@", value)
        value = _ASSIGNMENT.sub(lambda m: m.group("key") + REDACTED, value)
        return _TOKEN_SHAPES.sub(REDACTED, value)

    def url(self, url: str) -> str:
        """A URL with its password hidden, as SQLAlchemy renders it, and scrubbed."""
        try:
            from sqlalchemy.engine import make_url

            shown = make_url(url).render_as_string(hide_password=True)
        except Exception:  # not a database URL: hide the password by shape
            shown = url
        return self.text(shown)

    def value(self, value: Any, key: str | None = None) -> Any:
        """``value`` with secrets replaced; mappings, sequences and models are walked."""
        if key is not None and looks_secret(key) and value not in (None, "", {}, []):
            return REDACTED
        if isinstance(value, SecretStr | SecretBytes):
            return REDACTED
        if isinstance(value, BaseModel):
            return self.value(value.model_dump(mode="json"))
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {str(k): self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def _secret_values(settings: Any, key: str = "") -> Iterable[str]:
    if settings is None:
        return
    if isinstance(settings, SecretStr):
        yield settings.get_secret_value()
    elif isinstance(settings, SecretBytes):
        yield settings.get_secret_value().decode("utf-8", "replace")
    elif isinstance(settings, BaseModel):
        for name in type(settings).model_fields:
            yield from _secret_values(getattr(settings, name), name)
    elif isinstance(settings, Mapping):
        for k, v in settings.items():
            yield from _secret_values(v, str(k))
    elif isinstance(settings, str) and looks_secret(key):
        yield settings
    elif isinstance(settings, list | tuple):
        for item in settings:
            yield from _secret_values(item, key)


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs each record's message, arguments and traceback in place.

    Install it on handlers (:func:`redact_logging`): a filter on a logger does not see records
    propagated from its children.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what is there, scrubbed
            message = f"{record.msg} {record.args}"
        record.msg = self.redactor.text(message)
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redactor.text(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        return True


def redact_logging(
    redactor: Redactor, handlers: Iterable[logging.Handler] | None = None
) -> RedactingFilter:
    """Add one :class:`RedactingFilter` to ``handlers`` (default: every root-logger handler)."""
    chosen = list(logging.getLogger().handlers if handlers is None else handlers)
    redacting = RedactingFilter(redactor)
    for handler in chosen:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(redacting)
    return redacting
