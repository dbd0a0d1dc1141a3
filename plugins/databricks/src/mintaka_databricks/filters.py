"""Text values in MLflow search filters, written so that MLflow's parser reads them back as given.

MLflow's filter parser (``SearchUtils``, on ``sqlparse``) takes a value in single or double quotes
and strips the quotes without unescaping anything between them: ``'Bob''s model'`` and
``'Bob\\'s model'`` are read with the doubled quote or the backslash left in, and match nothing.
So a value holding a single quote is written in double quotes, and one holding both kinds of quote
cannot be written at all.

``LIKE`` has no escape either: MLflow turns ``%`` and ``_`` into wildcards wherever they stand
(its file store rewrites them into a regular expression, its SQL store hands the pattern to the
database without an ``ESCAPE`` clause), so a pattern built from a name that holds one matches
other names too. Such a search finds a superset, which the caller narrows exactly.
"""

from __future__ import annotations

from mintaka.errors import ValidationError


def filter_value(text: str) -> str:
    """``text`` quoted as a string value of an MLflow search filter (``name = 'churn'``,
    ``name = "Bob's model"``); ``ValidationError`` when it holds both kinds of quote, which no
    filter can name."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise ValidationError(
        f"{text!r} holds both a single and a double quote, so no MLflow search filter can name it"
    )


def starting_with(prefix: str) -> str:
    """``LIKE`` and the quoted pattern of an MLflow search filter for values starting with
    ``prefix``, and more: ``%`` or ``_`` in ``prefix`` stay wildcards, so the caller keeps only
    the values that do start with ``prefix``."""
    return f"LIKE {filter_value(prefix + '%')}"
