"""Secrets never leave the process: :func:`redact` blanks what looks like a key in any text that
is written or printed (a model spec, a URL, an error message).

Keys belong in the environment (``SIF_MODEL_API_KEY``, ``SIF_JUDGE_API_KEY``,
``SIF_WRITER_API_KEY``, ``OPENAI_API_KEY``, ``HF_TOKEN``); a key passed in a spec still works,
and is replaced by ``***`` wherever that spec is written: ``results.json``, the viewer's data,
the report, messages.
"""

from __future__ import annotations

import re

MASK = "***"

# query parameters (and key=value pairs) whose value is a secret
_SECRET_PARAMETER = re.compile(
    r"(?i)(?P<key>(?<![A-Za-z0-9_-])(?:api[_-]?key|apikey|key|token|access[_-]?token|auth[_-]?token|secret"
    r"|password|passwd|authorization|bearer)=)(?P<value>[^&;,\s'\"]+)"
)
# user:password@ in a URL
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@", re.IGNORECASE)
# well-known key shapes, wherever they appear
_KEY_SHAPES = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{16,}|Bearer\s+[A-Za-z0-9._~+/-]{8,}=*)")


def redact(text: str) -> str:
    """``text`` with secrets replaced by ``***``: values of key/token/password parameters, the
    user-info part of URLs, and strings shaped like API keys (``sk-...``, ``hf_...``, bearer tokens)."""
    text = _SECRET_PARAMETER.sub(lambda m: m.group("key") + MASK, text)
    text = _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
    return _KEY_SHAPES.sub(MASK, text)
