"""``chinwag apps``: create, list, show and update apps.

Each command is a thin shell over ``chinwag.server.handlers.apps``: the rules (name length,
lifetimes, a staging app's development key) live there, shared with the platform API, so
the CLI cannot drift from what the server enforces. The server is imported lazily, inside
the commands, so ``chinwag --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from chinwag.cli.audited import audited
from chinwag.cli.keys import run_set_jwks
from chinwag.cli.options import DatabaseUrl, JsonFlag
from chinwag.cli.output import Output, app_details, app_json, app_table, key_json, keys_table, safe
from chinwag.cli.runner import run_handler

if TYPE_CHECKING:
    from chinwag.server.services import Services
    from chinwag.server.storage.records import AppRecord, KeyRecord

__all__ = ["apps_app"]

apps_app = typer.Typer(name="apps", help="Create and manage apps.", no_args_is_help=True)

SessionLifetime = Annotated[
    int | None,
    typer.Option(
        "--session-lifetime", metavar="SECONDS", help="How long a session lasts (default 30 days)."
    ),
]
MaxTokenAge = Annotated[
    int | None,
    typer.Option(
        "--max-token-age",
        metavar="SECONDS",
        help="Oldest identity token (by iat) accepted (default 900).",
    ),
]

ConversationPolicy = Annotated[
    str | None,
    typer.Option(
        "--conversation-policy",
        metavar="POLICY",
        help="Who may start a conversation with whom: open (default), existing_users "
        "(no user is created by naming it) or anonymous_to_agents (anonymous users may "
        "only talk to agents).",
    ),
]


def _print_app(console: Console, app: AppRecord) -> None:
    console.print(app_details(app))


@apps_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name for people; need not be unique.")],
    production: Annotated[
        bool, typer.Option("--production", help="A production app (no development key).")
    ] = False,
    allow_anonymous: Annotated[
        bool, typer.Option("--allow-anonymous", help="Allow sessions without an identity.")
    ] = False,
    no_nonce: Annotated[
        bool, typer.Option("--no-nonce", help="Accept identity tokens without a nonce.")
    ] = False,
    session_lifetime: SessionLifetime = None,
    max_token_age: MaxTokenAge = None,
    conversation_policy: ConversationPolicy = None,
    database_url: DatabaseUrl = None,
    json_mode: JsonFlag = False,
) -> None:
    """Create an app; a staging app also gets a development key for the sample provider."""
    from chinwag.server.handlers import apps as handlers

    out = Output(json_mode)
    app, dev_key = run_handler(
        out,
        database_url,
        audited(
            lambda services: handlers.create_app(
                services,
                name,
                production=production,
                allow_anonymous=allow_anonymous,
                require_nonce=not no_nonce,
                session_lifetime=handlers.DEFAULT_SESSION_LIFETIME
                if session_lifetime is None
                else session_lifetime,
                max_token_age=handlers.DEFAULT_MAX_TOKEN_AGE
                if max_token_age is None
                else max_token_age,
                conversation_policy=conversation_policy or "open",
            ),
            "app.create",
            lambda made: f"apps/{made[0].id}",
            {"name": name, "production": production},
        ),
    )
    dev = dev_key.record if dev_key else None
    data = app_json(app) | {
        "development_key": {"kid": dev.kid, "alg": dev.alg} if dev else None,
    }

    def human(console: Console) -> None:
        _print_app(console, app)
        if dev is not None:
            console.print(
                f"development key [bold]{safe(dev.kid)}[/] ({safe(dev.alg)}): signs tokens "
                "for anyone via POST /v1/dev/identity_tokens; refused once the app is production."
            )
        console.print(f"[green]created app[/] [bold]{safe(app.id)}[/]")

    out.emit(data, human)


@apps_app.command("list")
def list_(database_url: DatabaseUrl = None, json_mode: JsonFlag = False) -> None:
    """List every app, oldest first."""
    from chinwag.server.handlers import apps as handlers

    out = Output(json_mode)
    apps = run_handler(out, database_url, handlers.list_apps)

    def human(console: Console) -> None:
        if apps:
            console.print(app_table(apps))
        else:
            console.print("No apps yet; create one with [bold]chinwag apps create NAME[/].")

    out.emit({"apps": [app_json(a) for a in apps]}, human)


@apps_app.command("show")
def show(
    app_id: Annotated[str, typer.Argument(help="The app's id.")],
    database_url: DatabaseUrl = None,
    json_mode: JsonFlag = False,
) -> None:
    """Show an app and its keys (never their secrets)."""
    from chinwag.server.handlers import apps as handlers
    from chinwag.server.handlers import jwks

    async def load(
        services: Services,
    ) -> tuple[AppRecord, list[KeyRecord], list[str], str | None]:
        return (
            await handlers.get_app(services, app_id),
            await handlers.list_keys(services, app_id),
            await handlers.list_agents(services, app_id),
            await jwks.registered_url(services, app_id),
        )

    out = Output(json_mode)
    app, keys, agents, jwks_url = run_handler(out, database_url, load)

    def human(console: Console) -> None:
        _print_app(console, app)
        console.print("agents: " + (", ".join(safe(a) for a in agents) or "none"))
        if jwks_url is not None:
            console.print(f"JWKS: {safe(jwks_url)}")
        if keys:
            console.print(keys_table(keys))
        else:
            console.print("No keys; add one with [bold]chinwag keys generate[/].")

    data = {"keys": [key_json(k) for k in keys], "agents": agents, "jwks_url": jwks_url}
    out.emit(app_json(app) | data, human)


@apps_app.command("update")
def update(
    app_id: Annotated[str, typer.Argument(help="The app's id.")],
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    production: Annotated[
        bool | None,
        typer.Option(
            "--production/--staging",
            help="Move the app; its development keys stop working in production.",
            show_default=False,
        ),
    ] = None,
    allow_anonymous: Annotated[
        bool | None,
        typer.Option("--allow-anonymous/--no-allow-anonymous", show_default=False),
    ] = None,
    require_nonce: Annotated[
        bool | None, typer.Option("--nonce/--no-nonce", show_default=False)
    ] = None,
    session_lifetime: SessionLifetime = None,
    max_token_age: MaxTokenAge = None,
    conversation_policy: ConversationPolicy = None,
    agent: Annotated[
        list[str] | None,
        typer.Option("--agent", metavar="USER_ID", help="Designate a user as an agent."),
    ] = None,
    not_agent: Annotated[
        list[str] | None,
        typer.Option("--not-agent", metavar="USER_ID", help="Stop designating a user."),
    ] = None,
    jwks_url: Annotated[
        str | None,
        typer.Option(
            "--jwks-url",
            metavar="URL",
            help="Verify tokens with the keys published at this https:// URL (a JWK Set); "
            "fetched now. Same as 'chinwag keys jwks APP URL'.",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    json_mode: JsonFlag = False,
) -> None:
    """Change an app's settings; options left out keep their value."""
    from chinwag.server.handlers import apps as handlers

    changes: dict[str, Any] = {
        "name": name,
        "environment": None if production is None else ("production" if production else "staging"),
        "allow_anonymous": allow_anonymous,
        "require_nonce": require_nonce,
        "session_lifetime": session_lifetime,
        "max_token_age": max_token_age,
        "conversation_policy": conversation_policy,
    }

    async def change(services: Services) -> tuple[AppRecord, list[str]]:
        app = await handlers.update_app(services, app_id, **changes)
        agents = await handlers.set_agents(
            services, app_id, add=list(agent or []), remove=list(not_agent or [])
        )
        return app, agents

    out = Output(json_mode)
    jwks = run_set_jwks(out, app_id, jwks_url, database_url) if jwks_url is not None else None
    audit_data = {k: v for k, v in changes.items() if v is not None}
    if agent or not_agent:
        audit_data["agents"] = {"add": list(agent or []), "remove": list(not_agent or [])}
    app, agents = run_handler(
        out, database_url, audited(change, "app.update", f"apps/{app_id}", audit_data)
    )
    extra: dict[str, Any] = {"agents": agents}
    if jwks is not None:
        extra["jwks"] = jwks.to_json()

    def human(console: Console) -> None:
        _print_app(console, app)
        console.print("agents: " + (", ".join(safe(a) for a in agents) or "none"))
        if jwks is not None:
            console.print(f"JWKS: {safe(jwks.url)} ({len(jwks.keys)} keys)")
        console.print(f"[green]updated app[/] [bold]{safe(app.id)}[/]")

    out.emit(app_json(app) | extra, human)
