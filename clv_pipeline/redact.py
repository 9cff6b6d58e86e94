"""Take secrets out of text before it is printed, logged or stored: :func:`redact`.

Webhook and database URLs carry their credentials in the URL itself: a Slack webhook's path
(``https://hooks.slack.com/services/T.../B.../<token>``), a Teams webhook's GUIDs, ``user:pass@``,
``?token=`` / ``?sig=`` / ``?key=`` query values. :func:`redact` keeps what helps on-call (the
scheme, the host, the port, plain path words such as ``services``) and replaces the rest with
``***``; ``token=...``, ``password=...``, ``Bearer ...`` outside URLs too. Use it on anything that
may contain a URL or an error message before it reaches a log, an alert, a status line or an
exception message.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MASK = "***"

#: ``scheme://...`` up to whitespace, a quote or a bracket (trailing punctuation left out).
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>()\[\]{}]+")
_TRAILING = ".,;:!?"
#: Hosts whose every path segment after the first is a credential (incoming webhooks).
_WEBHOOK_HOSTS = (
    "hooks.slack.com",
    "webhook.office.com",
    "outlook.office.com",
    "outlook.office365.com",
    "discord.com",
    "discordapp.com",
    "hooks.zapier.com",
    "logic.azure.com",
)
_SECRET_NAMES = r"token|key|apikey|sig|signature|secret|password|passwd|pwd|pass|credentials?"  # noqa: S105
_VALUE = r"(?!\*\*\*)([^\s&'\",;)]+)"
#: ``name=value`` where the name says it is a secret (``api_key=``, ``access_token=``, ``sig=``),
#: and ``password: value`` (outside URLs).
_ASSIGNMENT = re.compile(
    rf"(?i)(?<![\w.\-])((?:[\w\-]*[_\-])?(?:{_SECRET_NAMES}))(\s*=\s*){_VALUE}"
    rf"|(?i:\b(password|passwd|secret|token)(\s*:\s*)){_VALUE}"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=\-]{6,}")
_LETTERS = re.compile(r"[A-Za-z]")
_DIGITS = re.compile(r"[0-9]")


def redact(text: str) -> str:
    """``text`` with every credential replaced by ``***`` (URLs, ``key=value``, bearer tokens).

    >>> redact("POST https://hooks.slack.com/services/T0FAKE/B0FAKE/s3cr3tT0ken failed")
    'POST https://hooks.slack.com/services/***/***/*** failed'
    >>> redact("https://user:pass@example.com/hook?token=abc&x=1")
    'https://***@example.com/hook?token=***&x=***'
    """
    if not text:
        return text
    out = _URL.sub(lambda found: _redact_url(found.group(0)), str(text))
    out = _BEARER.sub(lambda found: f"{found.group(1)} {MASK}", out)
    return _ASSIGNMENT.sub(_mask_assignment, out)


def _mask_assignment(found: re.Match[str]) -> str:
    if found.group(1) is not None:
        name, sep, value = found.group(1), found.group(2), found.group(3)
    else:
        name, sep, value = found.group(4), found.group(5), found.group(6)
    if "://" in value or value.startswith(MASK):
        return found.group(0)
    return f"{name}{sep}{MASK}"


def _redact_url(url: str) -> str:
    trail = ""
    while url and url[-1] in _TRAILING:
        url, trail = url[:-1], url[-1] + trail
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:  # a malformed host: keep the scheme only
        return f"{url.split('://', 1)[0]}://{MASK}{trail}"
    netloc = parts.netloc  # host[:port] as written; userinfo (user:password@) masked
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    webhook = any(host == h or host.endswith("." + h) for h in _WEBHOOK_HOSTS)
    segments = parts.path.split("/")
    kept: list[str] = []
    for i, segment in enumerate(segments):
        if not segment:
            kept.append(segment)
        elif (webhook and i > 1) or _looks_secret(segment):
            kept.append(MASK)
        else:
            kept.append(segment)
    path = "/".join(kept)
    query = "&".join(
        f"{pair.split('=', 1)[0]}={MASK}" if "=" in pair else (MASK if pair else pair)
        for pair in parts.query.split("&")
    )
    out = f"{parts.scheme}://{netloc}{path}"
    if parts.query:
        out += f"?{query}"
    if parts.fragment:
        out += f"#{MASK}"
    return out + trail


def _looks_secret(segment: str) -> bool:
    """A path segment that looks like a token: letters and digits mixed (6+ characters), long
    (20+), or percent-encoded; not a date, a number or a plain word."""
    if segment == MASK:
        return False
    if len(segment) >= 20:
        return True
    if "%" in segment:
        return True
    return len(segment) >= 6 and bool(_LETTERS.search(segment)) and bool(_DIGITS.search(segment))
