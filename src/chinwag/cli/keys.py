"""``chinwag keys``: the keys an app's backend signs identity tokens with.

Three ways to get one, matching who should hold the signing material:

- ``generate``: chinwag makes a key pair and prints the private key once; only the public
  half is stored, so a lost private key means a new key, not a recovery.
- ``add``: upload your own public key (PEM or JWK); chinwag never sees the private key.
- ``add-secret``: an HS256 secret chinwag generates (never human-chosen: those crack offline).
  chinwag must keep it to verify, so ``show-secret`` can print it again for an admin.
- ``jwks``: a URL where your backend publishes its public keys (a JWK Set); chinwag fetches
  and caches it, so rotating keys needs no call to chinwag.

``--alg`` is a plain string checked by the handler, so a wrong one is reported as
``invalid_request`` (exit 1) with the supported list, like any other bad input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from chinwag.cli.audited import CLI_ADDRESS, audited
from chinwag.cli.options import DatabaseUrl, JsonFlag
from chinwag.cli.output import Output, key_json, keys_table, safe
from chinwag.cli.runner import run_handler
from chinwag.core.errors import InvalidRequest

if TYPE_CHECKING:
    from chinwag.server.handlers.jwks import JwksStatus
    from chinwag.server.services import Services

__all__ = ["MAX_KEY_FILE_CHARS", "keys_app", "run_set_jwks"]

keys_app = typer.Typer(name="keys", help="Manage an app's signing keys.", no_args_is_help=True)

MAX_KEY_FILE_CHARS = 64 * 1024
"""A public key (even RSA-4096 as a JWK) is a few KiB; more is the wrong file."""

AppId = Annotated[str, typer.Argument(help="The app's id.")]
Kid = Annotated[str, typer.Argument(help="The key's id (kid); kids are unique per app only.")]
ALG_HELP = "ES256, RS256, PS256 or EdDSA."


@keys_app.command("generate")
def generate(
    app_id: AppId,
    alg: Annotated[str, typer.Option("--alg", help=ALG_HELP)] = "ES256",
    database_url: DatabaseUrl = None,
    json_mode: JsonFlag = False,
) -> None:
    """Generate a key pair; the private key is printed once and never stored."""
    from chinwag.server.handlers import apps as handlers

    out = Output(json_mode)
    new = run_handler(
        out,
        database_url,
        audited(
            lambda services: handlers.generate_key(services, app_id, alg),
            "key.generate.key_pair",
            lambda made: f"apps/{app_id}/keys/{made.record.kid}",
            {"alg": alg},
        ),
    )
    assert new.private_key_pem is not None
    private_key_pem = new.private_key_pem

    def human(console: Console) -> None:
        console.print(
            f"[green]generated key[/] [bold]{safe(new.record.kid)}[/] ({safe(new.record.alg)})"
        )
        console.print(
            "[bold yellow]This private key is shown once and is not stored by chinwag. "
            "Keep it on your backend only; if it is lost, generate a new key.[/]"
        )
        typer.echo(private_key_pem, nl=False)

    out.emit(
        {"kid": new.record.kid, "alg": new.record.alg, "private_key_pem": private_key_pem}, human
    )


@keys_app.command("add")
def add(
    app_id: AppId,
    public_key: Annotated[
        typer.FileText,
        typer.Option("--public-key", metavar="FILE", help="A PEM or JWK public key; - for stdin."),
    ],
    alg: Annotated[
        str | None, typer.Option("--alg", help=ALG_HELP + " Inferred from the key if left out.")
    ] = None,
    kid: Annotated[
        str | None, typer.Option("--kid", help="The kid your tokens will carry (default: new).")
    ] = None,
    database_url: DatabaseUrl = None,
    json_mode: JsonFlag = False,
) -> None:
    """Upload your own public key (PEM or JWK); chinwag never needs the private key."""
    from chinwag.server.handlers import apps as handlers

    out = Output(json_mode)
    text = public_key.read(MAX_KEY_FILE_CHARS + 1)
    if len(text) > MAX_KEY_FILE_CHARS:
        out.fail(
            InvalidRequest(
                f"The key file is over {MAX_KEY_FILE_CHARS} characters; expected one public key.",
                data={"property": "public_key"},
            )
        )
    new = run_handler(
        out,
        database_url,
        audited(
            lambda services: handlers.add_public_key(services, app_id, text, alg, kid),
            "key.register",
            lambda made: f"apps/{app_id}/keys/{made.record.kid}",
            lambda made: {"alg": made.record.alg},
        ),
    )

    def human(console: Console) -> None:
        console.print(
            f"[green]added key[/] [bold]{safe(new.record.kid)}[/] ({safe(new.record.alg)})"
        )

    out.emit({"kid": new.record.kid, "alg": new.record.alg}, human)


def _print_secret(console: Console, kid: str, secret: str) -> None:
    console.print(f"HS256 secret for [bold]{safe(kid)}[/] (keep it on your backend only):")
    typer.echo(secret)


@keys_app.command("add-secret")
def add_secret(
    app_id: AppId, database_url: DatabaseUrl = None, json_mode: JsonFlag = False
) -> None:
    """Generate an HS256 secret (256 random bits) for your backend to sign with."""
    from chinwag.server.handlers import apps as handlers

    out = Output(json_mode)
    new = run_handler(
        out,
        database_url,
        audited(
            lambda services: handlers.add_secret(services, app_id),
            "key.generate.hmac_secret",
            lambda made: f"apps/{app_id}/keys/{made.record.kid}",
        ),
    )
    assert new.secret is not None
    secret = new.secret
    out.emit(
        {"kid": new.record.kid, "alg": new.record.alg, "secret": secret},
        lambda console: _print_secret(console, new.record.kid, secret),
    )


@keys_app.command("show-secret")
def show_secret(
    app_id: AppId, kid: Kid, database_url: DatabaseUrl = None, json_mode: JsonFlag = False
) -> None:
    """Print an HS256 key's secret again (an admin recovering the backend's copy)."""
    from chinwag.server.handlers import apps as handlers

    out = Output(json_mode)
    key = run_handler(
        out,
        database_url,
        audited(
            lambda services: handlers.get_secret(services, app_id, kid),
            "key.secret_read",
            lambda found: f"apps/{found.app_id}/keys/{found.kid}",
        ),
    )
    assert key.secret is not None
    secret = key.secret
    out.emit(
        {"kid": key.kid, "alg": key.alg, "secret": secret},
        lambda console: _print_secret(console, key.kid, secret),
    )


@keys_app.command("list")
def list_(app_id: AppId, database_url: DatabaseUrl = None, json_mode: JsonFlag = False) -> None:
    """List an app's keys (never their secrets)."""
    from chinwag.server.handlers import apps as handlers

    out = Output(json_mode)
    keys = run_handler(out, database_url, lambda services: handlers.list_keys(services, app_id))

    def human(console: Console) -> None:
        if keys:
            console.print(keys_table(keys))
        else:
            console.print("No keys; add one with [bold]chinwag keys generate[/].")

    out.emit({"keys": [key_json(k) for k in keys]}, human)


def _set_enabled(
    app_id: str, kid: str, enabled: bool, database_url: str | None, json_mode: bool
) -> None:
    from chinwag.server.handlers import apps as handlers

    out = Output(json_mode)
    key = run_handler(
        out,
        database_url,
        audited(
            lambda services: handlers.set_key_enabled(services, app_id, kid, enabled),
            "key.enable" if enabled else "key.disable",
            lambda found: f"apps/{found.app_id}/keys/{found.kid}",
        ),
    )
    word = "enabled" if enabled else "disabled"
    out.emit(
        key_json(key),
        lambda console: console.print(f"[green]{word} key[/] [bold]{safe(key.kid)}[/]"),
    )


@keys_app.command("disable")
def disable(
    app_id: AppId, kid: Kid, database_url: DatabaseUrl = None, json_mode: JsonFlag = False
) -> None:
    """Stop accepting tokens signed with this key (reversible with 'keys enable')."""
    _set_enabled(app_id, kid, False, database_url, json_mode)


@keys_app.command("enable")
def enable(
    app_id: AppId, kid: Kid, database_url: DatabaseUrl = None, json_mode: JsonFlag = False
) -> None:
    """Accept tokens signed with this key again."""
    _set_enabled(app_id, kid, True, database_url, json_mode)


@keys_app.command("delete")
def delete(
    app_id: AppId, kid: Kid, database_url: DatabaseUrl = None, json_mode: JsonFlag = False
) -> None:
    """Delete a key for good; tokens it signed stop verifying at once."""
    from chinwag.server.handlers import apps as handlers

    out = Output(json_mode)

    async def delete_and_name(services: Services) -> str:
        """The deleted key's target path."""
        await handlers.delete_key(services, app_id, kid)
        return f"apps/{app_id}/keys/{kid}"

    run_handler(out, database_url, audited(delete_and_name, "key.delete", lambda path: path))
    out.emit(
        {"kid": kid, "deleted": True},
        lambda console: console.print(f"[green]deleted key[/] [bold]{safe(kid)}[/]"),
    )


def _print_jwks(console: Console, status: JwksStatus) -> None:
    console.print(f"JWKS [bold]{safe(status.url)}[/] for app [bold]{safe(status.app_id)}[/]")
    for kid, alg in status.keys.items():
        console.print(f"  key [bold]{safe(kid)}[/] ({safe(alg)})")
    for rejected in status.rejected:
        console.print(f"  [yellow]ignored[/] {safe(rejected.kid or '?')}: {safe(rejected.reason)}")


def run_set_jwks(out: Output, app_id: str, url: str, database_url: str | None) -> JwksStatus:
    """Register ``url`` (fetched and checked now); shared with ``apps update --jwks-url``."""
    from chinwag.server.handlers import jwks as handlers
    from chinwag.server.handlers.api_keys import CLI_CALLER

    return run_handler(
        out,
        database_url,
        lambda services: handlers.set_jwks_url(
            services, app_id, url, caller=CLI_CALLER, address=CLI_ADDRESS
        ),
    )


@keys_app.command("jwks")
def jwks(
    app_id: AppId,
    url: Annotated[
        str | None,
        typer.Argument(help="An https:// URL serving the app's JWK Set; omit to show it."),
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Stop trusting the app's JWKS.")] = False,
    database_url: DatabaseUrl = None,
    json_mode: JsonFlag = False,
) -> None:
    """Verify tokens with keys your backend publishes at a URL (no call to rotate them).

    The set is fetched now; a URL chinwag cannot use is refused with the reason."""
    from chinwag.server.handlers import jwks as handlers
    from chinwag.server.handlers.api_keys import CLI_CALLER

    out = Output(json_mode)
    if remove:
        removed = run_handler(
            out,
            database_url,
            lambda services: handlers.remove_jwks_url(
                services, app_id, caller=CLI_CALLER, address=CLI_ADDRESS
            ),
        )
        word = "removed the JWKS URL" if removed else "no JWKS URL to remove"
        out.emit(
            {"app_id": app_id, "removed": removed},
            lambda console: console.print(f"[green]{word}[/] of app [bold]{safe(app_id)}[/]"),
        )
        return
    if url is None:
        status = run_handler(
            out, database_url, lambda services: handlers.jwks_status(services, app_id)
        )
    else:
        status = run_set_jwks(out, app_id, url, database_url)
    out.emit(status.to_json(), lambda console: _print_jwks(console, status))
