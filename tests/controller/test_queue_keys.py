"""Queue credentials (AssumeQueueRoleForUser): made from an access key, read back from the key
id alone, and their secret and token differ from one key (and one expiry) to another."""

from __future__ import annotations

from thresher.controller import queue_keys

ACCESS = "THR" + "A1B2C3D4E5F6G7H8J"


def test_a_queue_key_names_its_access_key_and_expiry() -> None:
    key = queue_keys.make(ACCESS, now=1_700_000_000.5)
    assert key.expiry == 1_700_000_000 + queue_keys.LIFETIME_S
    assert queue_keys.parse(key.key_id) == key
    for other in (ACCESS, "TQR123" + ACCESS, key.key_id + "X", "TQR" + "1" * 10 + "thr" + "A" * 17):
        assert queue_keys.parse(other) is None


def test_secrets_and_tokens_depend_on_the_access_secret_and_the_key() -> None:
    key = queue_keys.make(ACCESS, now=1_700_000_000)
    later = queue_keys.make(ACCESS, now=1_700_000_001)
    secret = queue_keys.secret_of("s1", key)
    assert secret == queue_keys.secret_of("s1", key)
    assert secret not in {queue_keys.secret_of("s2", key), queue_keys.secret_of("s1", later)}
    token = queue_keys.session_token_of("s1", key)
    assert token != secret
    assert token != queue_keys.session_token_of("s1", later)
