"""``chinwag keys``: every way to get a key, and that the key really verifies tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from chinwag.core.keys import Alg, generate_key_pair, sign_identity_token, verifier_for
from chinwag.server.services import Services
from chinwag.server.storage import apps as app_store
from chinwag.server.storage.records import KeyRecord
from tests.cli.conftest import Cli


def _stored_key(cli: Cli, app_id: str, kid: str) -> KeyRecord:
    async def get(services: Services) -> KeyRecord:
        async with services.db.read() as conn:
            record = await app_store.get_key(conn, app_id, kid)
        assert record is not None
        return record

    return cli.services(get)


def _verifies(record: KeyRecord, token: str) -> bool:
    verifier = verifier_for(
        Alg(record.alg), public_key_pem=record.public_key_pem, secret=record.secret
    )
    header_b64, payload_b64, signature_b64 = token.split(".")
    signature = jwt.utils.base64url_decode(signature_b64)
    return verifier.verify(f"{header_b64}.{payload_b64}".encode(), signature)


def _token(kid: str, alg: Alg, **key: Any) -> str:
    return sign_identity_token({"sub": "alice", "iat": 1}, kid=kid, alg=alg, **key)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_generated_key_verifies_a_token_signed_with_its_private_key(
    cli: Cli, app_id: str, alg: str
) -> None:
    new = cli.json("keys", "generate", app_id, "--alg", alg)
    assert set(new) == {"kid", "alg", "private_key_pem"}
    assert new["alg"] == alg
    assert new["private_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    stored = _stored_key(cli, app_id, new["kid"])
    assert stored.private_key_pem is None  # shown once, never stored
    token = _token(new["kid"], Alg(alg), private_key_pem=new["private_key_pem"])
    assert _verifies(stored, token)
    other = generate_key_pair(Alg(alg))
    assert not _verifies(
        stored, _token(new["kid"], Alg(alg), private_key_pem=other.private_key_pem)
    )


def test_generate_in_human_mode_warns_and_prints_the_private_key(cli: Cli, app_id: str) -> None:
    result = cli("keys", "generate", app_id, "--alg", "EdDSA")
    assert result.exit_code == 0, result.stderr
    assert "shown once" in result.stdout
    pem = result.stdout[result.stdout.index("-----BEGIN PRIVATE KEY-----") :]
    kid = cli.json("keys", "list", app_id)["keys"][-1]["kid"]
    assert _verifies(_stored_key(cli, app_id, kid), _token(kid, Alg.EDDSA, private_key_pem=pem))


@pytest.mark.parametrize("alg", ["HS512", "none", "HS256"])
def test_generate_refuses_an_unsupported_alg(cli: Cli, app_id: str, alg: str) -> None:
    _, error = cli.error("keys", "generate", app_id, "--alg", alg)
    assert error["id"] == "invalid_request"
    assert cli.json("keys", "list", app_id)["keys"][1:] == []


def test_generate_for_unknown_app_is_app_not_found(cli: Cli) -> None:
    _, error = cli.error("keys", "generate", "nope", "--alg", "ES256")
    assert error["id"] == "app_not_found"


def test_add_public_key_from_a_pem_file(cli: Cli, app_id: str, tmp_path: Path) -> None:
    pair = generate_key_pair(Alg.RS256)
    path = tmp_path / "key.pem"
    path.write_text(pair.public_key_pem)
    added = cli.json("keys", "add", app_id, "--public-key", str(path), "--alg", "PS256")
    assert set(added) == {"kid", "alg"}
    assert added["alg"] == "PS256"
    token = _token(added["kid"], Alg.PS256, private_key_pem=pair.private_key_pem)
    assert _verifies(_stored_key(cli, app_id, added["kid"]), token)


def test_add_public_jwk_from_stdin_with_a_chosen_kid(cli: Cli, app_id: str) -> None:
    pair = generate_key_pair(Alg.ES256)
    public = serialization.load_pem_public_key(pair.public_key_pem.encode())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(public)  # type: ignore[arg-type]
    args = ("keys", "add", app_id, "--public-key", "-", "--kid", "backend-2026")
    added = cli.json(*args, input=jwk)
    assert added == {"kid": "backend-2026", "alg": "ES256"}
    token = _token("backend-2026", Alg.ES256, private_key_pem=pair.private_key_pem)
    assert _verifies(_stored_key(cli, app_id, "backend-2026"), token)
    _, error = cli.error(*args, input=jwk)
    assert error["id"] == "id_in_use"
    _, error = cli.error(*args[:-1], "a/b/../c", input=jwk)
    assert (error["id"], error["data"]) == ("invalid_request", {"property": "kid"})


def test_add_refuses_a_private_key(cli: Cli, app_id: str) -> None:
    pair = generate_key_pair(Alg.ES256)
    _, error = cli.error("keys", "add", app_id, "--public-key", "-", input=pair.private_key_pem)
    assert error["id"] == "invalid_request"
    assert error["data"] == {"property": "public_key"}
    result = cli("keys", "add", app_id, "--public-key", "-", input=pair.private_key_pem)
    key_body = pair.private_key_pem.splitlines()[1]
    assert key_body not in result.stdout + result.stderr


def test_add_with_a_missing_file_is_a_usage_error(cli: Cli, app_id: str, tmp_path: Path) -> None:
    result = cli("keys", "add", app_id, "--public-key", str(tmp_path / "missing.pem"))
    assert result.exit_code == 2


def test_add_secret_matches_show_secret_and_verifies(cli: Cli, app_id: str) -> None:
    added = cli.json("keys", "add-secret", app_id)
    assert set(added) == {"kid", "alg", "secret"}
    assert added["alg"] == "HS256"
    shown = cli.json("keys", "show-secret", app_id, added["kid"])
    assert shown == added
    token = _token(added["kid"], Alg.HS256, secret=shown["secret"])
    assert _verifies(_stored_key(cli, app_id, added["kid"]), token)
    human = cli("keys", "show-secret", app_id, added["kid"])
    assert added["secret"] in human.stdout


def test_printed_secret_signs_with_pyjwt_exactly_as_printed(cli: Cli, app_id: str) -> None:
    """App developers hand the printed string to their JWT library, as with every peer."""
    added = cli.json("keys", "add-secret", app_id)
    printed = cli("keys", "show-secret", app_id, added["kid"]).stdout.splitlines()[-1]
    assert printed == added["secret"]
    assert len(printed) == 43  # 256 random bits as base64url text
    token = jwt.encode({"sub": "alice", "iat": 1}, printed, "HS256", headers={"kid": added["kid"]})
    assert _verifies(_stored_key(cli, app_id, added["kid"]), token)


def test_show_secret_of_an_asymmetric_key_is_refused(cli: Cli, app_id: str) -> None:
    kid = cli.json("keys", "list", app_id)["keys"][0]["kid"]
    _, error = cli.error("keys", "show-secret", app_id, kid)
    assert error["id"] == "invalid_request"
    assert error["data"] == {"kid": kid, "alg": "ES256"}


def test_disable_enable_and_delete_are_reflected_in_list(cli: Cli, app_id: str) -> None:
    kid = cli.json("keys", "add-secret", app_id)["kid"]

    def state() -> dict[str, bool]:
        return {k["kid"]: k["enabled"] for k in cli.json("keys", "list", app_id)["keys"]}

    assert state()[kid] is True
    assert cli.json("keys", "disable", app_id, kid)["enabled"] is False
    assert state()[kid] is False
    assert cli.json("keys", "enable", app_id, kid)["enabled"] is True
    assert state()[kid] is True
    assert cli.json("keys", "delete", app_id, kid) == {"kid": kid, "deleted": True}
    assert kid not in state()
    for command in ("disable", "enable", "delete", "show-secret"):
        _, error = cli.error("keys", command, app_id, kid)
        assert error["id"] == "not_found"


def test_human_keys_list_shows_every_kid(cli: Cli, app_id: str) -> None:
    cli.json("keys", "add-secret", app_id)
    result = cli("keys", "list", app_id)
    assert result.exit_code == 0, result.stderr
    for key in cli.json("keys", "list", app_id)["keys"]:
        assert key["kid"] in result.stdout


def test_two_apps_each_have_a_key_of_the_same_kid_and_manage_only_their_own(
    cli: Cli, app_id: str, tmp_path: Path
) -> None:
    """A kid is the app's own choice: another app's ``key-2024`` neither blocks nor is
    reached by this app's commands (before 0009 the second upload was id_in_use)."""
    other = str(cli.json("apps", "create", "other app")["app_id"])
    pairs = {app: generate_key_pair(Alg.ES256) for app in (app_id, other)}
    for app, pair in pairs.items():
        path = tmp_path / f"{app}.pem"
        path.write_text(pair.public_key_pem)
        added = cli.json("keys", "add", app, "--public-key", str(path), "--kid", "key-2024")
        assert added == {"kid": "key-2024", "alg": "ES256"}
    mine, theirs = _stored_key(cli, app_id, "key-2024"), _stored_key(cli, other, "key-2024")
    signed_by_other = _token("key-2024", Alg.ES256, private_key_pem=pairs[other].private_key_pem)
    assert _verifies(theirs, signed_by_other)
    assert not _verifies(mine, signed_by_other)

    def enabled(app: str) -> bool:
        [key] = [k for k in cli.json("keys", "list", app)["keys"] if k["kid"] == "key-2024"]
        return bool(key["enabled"])

    assert cli.json("keys", "disable", app_id, "key-2024")["enabled"] is False
    assert (enabled(app_id), enabled(other)) == (False, True)
    assert cli.json("keys", "enable", app_id, "key-2024")["enabled"] is True
    assert cli.json("keys", "delete", app_id, "key-2024")["deleted"] is True
    assert enabled(other) is True
    for command in ("disable", "enable", "delete", "show-secret"):
        _, error = cli.error("keys", command, app_id, "key-2024")
        assert error["id"] == "not_found"


def test_key_commands_need_the_app(cli: Cli, app_id: str) -> None:
    """The kid alone no longer names a key; the old one-argument form is a usage error
    rather than a guess at the app."""
    kid = cli.json("keys", "add-secret", app_id)["kid"]
    for command in ("disable", "enable", "delete", "show-secret"):
        assert cli("keys", command, kid).exit_code == 2
        _, error = cli.error("keys", command, "nope", kid)
        assert error["id"] == "app_not_found"
    assert cli.json("keys", "show-secret", app_id, kid)["kid"] == kid


def test_a_key_stored_before_kids_were_checked_can_still_be_deleted(cli: Cli, app_id: str) -> None:
    """Keys uploaded before the kid alphabet was enforced keep their kids; the per-app
    lookups must not refuse those as malformed, or they could never be removed."""
    legacy = KeyRecord(
        kid="old kid/1",
        app_id=app_id,
        alg="HS256",
        public_key_pem=None,
        secret="s" * 43,
        private_key_pem=None,
        development=False,
        enabled=True,
        created_at=1.0,
    )

    async def insert(services: Services) -> None:
        async with services.db.transaction() as tx:
            await app_store.insert_key(tx.conn, legacy)

    cli.services(insert)
    assert cli.json("keys", "disable", app_id, "old kid/1")["enabled"] is False
    assert cli.json("keys", "delete", app_id, "old kid/1")["deleted"] is True
    assert "old kid/1" not in [k["kid"] for k in cli.json("keys", "list", app_id)["keys"]]
