"""The box every stored secret goes through: authenticated encryption with rotating keys.

API secrets, integration codes and webhook secrets are stored in PostgreSQL only as ciphertext.
The keys come from ``AUTOTASK_SYNC_SECRET_KEYS`` (a Kubernetes Secret in production), never from
the database: a copy of the database alone reveals nothing.

Encryption is Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``), so a tampered or
truncated ciphertext is refused rather than decrypted into garbage. ``AUTOTASK_SYNC_SECRET_KEYS``
holds one or more keys, comma-separated: the first encrypts, every one decrypts (MultiFernet).
Rotating is therefore: put the new key first and keep the old one after it, run
``autotask-sync connections rekey`` (re-encrypts every stored secret under the first key), then
drop the old key.

Ciphertext is bytes and never leaves this module's callers as text: it is no secret by itself, but
logging it would tempt people to paste it around, and it identifies a secret across copies.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from shared.errors import ConfigError, SecretDecryptionError
from shared.redaction import register_secret

KEYS_VARIABLE = "AUTOTASK_SYNC_SECRET_KEYS"
_GENERATE_HINT = "generate one with `autotask-sync connections generate-key`"


class SecretBox:
    """Encrypts and decrypts the project's stored secrets with the configured keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ConfigError(f"{KEYS_VARIABLE} is not set: {_GENERATE_HINT} and set it")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode()))
            except ValueError:
                raise ConfigError(
                    f"{KEYS_VARIABLE}: key {position} of {len(keys)} is not a Fernet key "
                    f"(32 url-safe base64-encoded bytes); {_GENERATE_HINT}"
                ) from None
        self._box = MultiFernet(fernets)
        self._key_count = len(fernets)

    @classmethod
    def from_setting(cls, value: SecretStr | str | None) -> SecretBox:
        """A box from the variable's value (comma-separated keys, the first encrypts)."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else (value or "")
        keys = [part.strip() for part in raw.split(",") if part.strip()]
        for key in keys:
            register_secret(key)
        return cls(keys)

    @staticmethod
    def generate_key() -> str:
        """A new random key, ready to put in ``AUTOTASK_SYNC_SECRET_KEYS``."""
        return Fernet.generate_key().decode()

    @property
    def key_count(self) -> int:
        return self._key_count

    def encrypt(self, plaintext: str | SecretStr) -> bytes:
        """Ciphertext of ``plaintext`` under the first key."""
        value = plaintext.get_secret_value() if isinstance(plaintext, SecretStr) else plaintext
        return self._box.encrypt(value.encode())

    def decrypt(self, ciphertext: bytes, *, what: str) -> SecretStr:
        """The secret in ``ciphertext``; ``what`` names it for the error ("connection acme's API
        secret"). A ciphertext no key opens (or that was altered) raises SecretDecryptionError."""
        try:
            value = self._box.decrypt(bytes(ciphertext)).decode()
        except InvalidToken:
            raise SecretDecryptionError(
                f"cannot decrypt {what}: none of the {self._key_count} key(s) in "
                f"{KEYS_VARIABLE} opens it, or the stored value was altered; add back the key "
                "it was encrypted with (keep the new one first), then run "
                "`autotask-sync connections rekey`"
            ) from None
        register_secret(value)
        return SecretStr(value)

    def reencrypt(self, ciphertext: bytes, *, what: str) -> bytes:
        """``ciphertext`` encrypted again under the first key (for ``rekey``)."""
        try:
            return self._box.rotate(bytes(ciphertext))
        except InvalidToken:
            raise SecretDecryptionError(
                f"cannot re-encrypt {what}: none of the keys in {KEYS_VARIABLE} opens it; add "
                "back the key it was encrypted with and run rekey again"
            ) from None

    def __repr__(self) -> str:
        return f"SecretBox({self._key_count} key(s))"


__all__ = ["KEYS_VARIABLE", "SecretBox"]
