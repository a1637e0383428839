"""Where secrets can appear, and how they are masked there (and nowhere else).

Two kinds of secret reach itkit: the API key (``--api-key``,
``OPENAI_API_KEY``) and credentials inside a URL (``user:password@`` or a
query parameter such as ``?api_key=...``). They can only show up in what the
client and the endpoint say: the URLs itkit prints, and the error messages
of the HTTP client and the server. So:

- :func:`mask_url` masks the user info and the values of secret-looking query
  parameters of one URL; :func:`mask_urls` does so for every URL in a text;
- :func:`mask_key` masks the exact key in a text, and only a key of at least
  :data:`MIN_SECRET_LENGTH` characters: a dummy key such as ``x`` (what vLLM,
  llama.cpp and Ollama are usually given) is no secret, and masking every
  ``x`` would corrupt the text around it;
- :func:`check_api_key` refuses a key that cannot go into an HTTP header.

Data (records, model answers, failure reasons) is never scanned for a secret.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "**********"
MIN_SECRET_LENGTH = 8
"""Characters: a shorter API key is not masked (it is a placeholder, and masking it would alter other text)."""
SECRET_QUERY_KEYS = frozenset(
    {
        "api_key", "apikey", "api-key", "key", "token", "access_token", "auth", "password", "passwd",
        "secret", "client_secret", "sig", "signature", "code",
    }
)
"""Query parameters whose values are masked in every URL shown (compared case-insensitively)."""

KEY_FRAGMENT_LENGTH = 8
"""Characters of the start and end of a key masked in server messages (providers echo them)."""
KEY_FRAGMENT_MIN_KEY = 12
"""Keys shorter than this have no fragments masked (a fragment would be most of the key, or too common)."""

_KEY_LIKE = re.compile(r"\b(sk|pk|key|rk)-[A-Za-z0-9_\-*.]{2,}")
_SECRET_PAIR = re.compile(
    r"(?<![\w-])(" + "|".join(sorted((re.escape(k) for k in SECRET_QUERY_KEYS), key=len, reverse=True)) + r")=(?!\*{10})[^&\s'\"<>#]+",
    re.I,
)
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>]+""")


def has_credentials(url: str) -> bool:
    """Does ``url`` carry a ``user[:password]@`` part?"""
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return "@" in url


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its ``user:password@`` part, and that part as an HTTP Basic ``Authorization`` value (or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode("utf-8")).decode("ascii")
    return urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


def mask_url(url: str) -> str:
    """``url`` with its user info and the values of secret query parameters replaced by :data:`REDACTED`.

    Only those parts change: the rest of the text is kept as written (scheme case included).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = len(rest)
    for mark in "/?#":
        at = rest.find(mark)
        if at != -1:
            cut = min(cut, at)
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _password = userinfo.partition(":")
        # a user name with a password stays readable; a lone user name may be a token (https://TOKEN@host)
        netloc = f"{user}:{REDACTED}@{host}" if colon else f"{REDACTED}@{host}"
    path, qmark, query = tail.partition("?")
    if qmark:
        query, hash_, fragment = query.partition("#")
        query = "&".join(_mask_pair(part) for part in query.split("&")) + hash_ + fragment
    return f"{scheme}{sep}{netloc}{path}{qmark}{query}"


def _mask_pair(part: str) -> str:
    name, eq, _value = part.partition("=")
    if eq and unquote(name).lower() in SECRET_QUERY_KEYS:
        return f"{name}={REDACTED}"
    return part


def mask_urls(text: str) -> str:
    """``text`` with every URL in it masked by :func:`mask_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: mask_url(m.group(0)), text)


def mask_key(text: str, key: str | None) -> str:
    """``text`` with every occurrence of ``key`` masked; unchanged when the key is shorter than :data:`MIN_SECRET_LENGTH`."""
    if not key or len(key) < MIN_SECRET_LENGTH or not text or key not in text:
        return text
    return text.replace(key, REDACTED)


def mask_server_text(text: str, key: str | None) -> str:
    """What a server or the HTTP client said, fit to show: the key (and the fragments of it that providers echo,
    such as ``sk-ab***wxyz``) and the secrets of any URL masked. Only for such messages, never for data."""
    out = mask_key(text, key)
    if key and len(key) >= KEY_FRAGMENT_MIN_KEY:
        for fragment in (key[:KEY_FRAGMENT_LENGTH], key[-KEY_FRAGMENT_LENGTH:]):
            out = out.replace(fragment, REDACTED)
    out = _KEY_LIKE.sub(REDACTED, out)
    out = mask_urls(out)
    # a server may echo the request's path and query without the scheme and host ("no route POST /v1?api_key=...")
    return _SECRET_PAIR.sub(lambda m: f"{m.group(1)}={REDACTED}", out)


def check_api_key(key: str) -> str | None:
    """Why ``key`` cannot be sent as an API key (None when it can): it must be one line of printable ASCII."""
    if "\n" in key or "\r" in key:
        return "spans several lines; give the key on one line (check the file or variable it came from)"
    if not key.isascii():
        return "holds non-ASCII characters, which cannot be sent in an HTTP header; check for a typo or a stray character"
    if any(not (32 <= ord(c) < 127) for c in key):
        return "holds control characters (a tab or an escape); give the key alone"
    return None


__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SECRET_QUERY_KEYS",
    "check_api_key",
    "has_credentials",
    "mask_key",
    "mask_server_text",
    "mask_url",
    "mask_urls",
    "split_credentials",
]
