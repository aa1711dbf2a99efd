"""The secret box: authenticated encryption, clear errors, key rotation, nothing leaks."""

from __future__ import annotations

import io
import json

import pytest
from pydantic import SecretStr

from shared.errors import ConfigError, SecretDecryptionError
from shared.logging import configure_logging, get_logger
from shared.secrets import KEYS_VARIABLE, SecretBox

API_SECRET = "Api-Secret-Value-0f1e2d3c"


def test_round_trip_returns_the_secret_and_the_ciphertext_hides_it():
    box = SecretBox([SecretBox.generate_key()])
    token = box.encrypt(API_SECRET)
    assert API_SECRET.encode() not in token
    assert box.decrypt(token, what="x").get_secret_value() == API_SECRET
    assert box.encrypt(SecretStr(API_SECRET)) != token  # random IV: equal secrets differ


@pytest.mark.parametrize("position", [0, 20, -5])
def test_tampered_ciphertext_is_refused_with_a_clear_error(position):
    box = SecretBox([SecretBox.generate_key()])
    token = bytearray(box.encrypt(API_SECRET))
    token[position] = (token[position] + 1) % 256
    with pytest.raises(SecretDecryptionError) as info:
        box.decrypt(bytes(token), what="connection 'acme''s API secret")
    message = str(info.value)
    assert "connection 'acme''s API secret" in message
    assert KEYS_VARIABLE in message
    assert API_SECRET not in message


def test_a_wrong_key_names_the_variable_and_what_to_do():
    token = SecretBox([SecretBox.generate_key()]).encrypt(API_SECRET)
    with pytest.raises(SecretDecryptionError, match=f"{KEYS_VARIABLE}.*rekey"):
        SecretBox([SecretBox.generate_key()]).decrypt(token, what="it")


def test_missing_and_malformed_keys_name_the_variable():
    with pytest.raises(ConfigError, match=f"{KEYS_VARIABLE} is not set.*generate-key"):
        SecretBox.from_setting("")
    with pytest.raises(ConfigError, match=f"{KEYS_VARIABLE}: key 2 of 2 is not a Fernet key"):
        SecretBox.from_setting(f"{SecretBox.generate_key()},not-a-key")


def test_rotation_old_key_second_then_rekey_then_drop_it():
    old, new = SecretBox.generate_key(), SecretBox.generate_key()
    token = SecretBox([old]).encrypt(API_SECRET)
    both = SecretBox.from_setting(f"{new}, {old}")
    assert both.decrypt(token, what="x").get_secret_value() == API_SECRET
    rotated = both.reencrypt(token, what="x")
    only_new = SecretBox([new])
    assert only_new.decrypt(rotated, what="x").get_secret_value() == API_SECRET
    with pytest.raises(SecretDecryptionError):
        only_new.decrypt(token, what="x")  # the old ciphertext needed the old key


def test_decrypted_secrets_and_the_keys_are_masked_in_log_lines():
    key = SecretBox.generate_key()
    box = SecretBox.from_setting(key)
    token = box.encrypt("Webhook-Secret-9a8b7c6d")
    box.decrypt(token, what="x")
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    get_logger("test").info("oops", detail="secret Webhook-Secret-9a8b7c6d and key " + key)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert "Webhook-Secret-9a8b7c6d" not in line["detail"]
    assert key not in line["detail"]
    assert repr(box) == "SecretBox(1 key(s))"
