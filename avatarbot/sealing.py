"""Interaction tokens, sealed for the database.

An interaction token lets whoever holds it answer in the member's own interaction
for 15 minutes. Any bot process may run a job, so the job row keeps its token, but
only sealed: encrypted and authenticated (Fernet) with a key derived from
``DISCORD_TOKEN`` by HKDF-SHA256. A copy of the database alone reveals nothing; a
token sealed more than 15 minutes ago, under another key, or altered, unseals to
None. Nothing here logs a token, sealed or not.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

INTERACTION_LIFETIME = timedelta(minutes=15)
# Fixed forever: changing either makes every sealed token of a running fleet unreadable.
_SALT = b"avatarbot/interaction-token/salt/v1"
_INFO = b"avatarbot interaction token sealing v1"


def derive_key(secret: str) -> bytes:
    """A Fernet key (urlsafe base64 of 32 bytes) derived from ``secret`` by HKDF-SHA256."""
    if not secret:
        raise ValueError("a sealing secret must not be empty")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


class TokenSealer:
    """Seals and unseals interaction tokens with a key derived from the bot's token."""

    def __init__(
        self,
        secret: str,
        *,
        lifetime: timedelta = INTERACTION_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fernet = Fernet(derive_key(secret))
        self._lifetime = int(lifetime.total_seconds())
        self._clock = clock

    def __repr__(self) -> str:
        return "TokenSealer(<key hidden>)"

    def seal(self, token: str, *, issued_at: float | None = None) -> str:
        """The sealed token; it opens for ``lifetime`` from ``issued_at`` (default: now).

        Pass the interaction's creation time: Discord's 15 minutes start there.
        """
        at = int(self._clock() if issued_at is None else issued_at)
        return self._fernet.encrypt_at_time(token.encode(), at).decode("ascii")

    def unseal(self, sealed: str) -> str | None:
        """The token, or None when it expired, was sealed under another key or was altered."""
        try:
            plain = self._fernet.decrypt_at_time(
                sealed.encode("ascii"), self._lifetime, int(self._clock())
            )
        except (InvalidToken, UnicodeError, TypeError, ValueError):
            log.debug("a sealed interaction token did not open (expired, other key, or altered)")
            return None
        return plain.decode()
