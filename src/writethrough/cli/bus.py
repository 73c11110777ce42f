"""``writethrough bus``: helpers for the invalidation bus (``install-trigger``)."""

from __future__ import annotations

import click

__all__ = ["bus_group"]


@click.group("bus", help="Helpers for the invalidation bus (see docs/coherence.md).")
def bus_group() -> None:
    """The bus command group."""


@bus_group.command(
    "install-trigger",
    help=(
        "Make plain SQL writes to a PostgreSQL store's table notify the caches: adds a "
        "trigger sending the bus message for every INSERT, UPDATE, DELETE and TRUNCATE. "
        "URL is the store's URL (postgresql://user@host/db?table=name)."
    ),
)
@click.argument("url")
@click.option("--channel", default=None, help="Bus channel (default: derived from the store).")
@click.option("--print-sql", is_flag=True, help="Print the SQL instead of running it.")
@click.option("--remove", is_flag=True, help="Remove the triggers instead.")
def install_trigger(url: str, channel: str | None, print_sql: bool, remove: bool) -> None:
    """Run (or print) the trigger SQL for the store ``url`` names."""
    import writethrough as wt
    from writethrough.bus.base import default_channel
    from writethrough.url import open_store, parse_url

    try:
        from writethrough.bus.postgres import trigger_sql
    except ImportError as exc:
        raise click.ClickException(
            f"needs psycopg: pip install 'writethrough[postgres]' ({exc})"
        ) from None
    try:
        store = open_store(url)
    except wt.WriteThroughError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        table = getattr(store, "table", None)
        if not callable(getattr(store, "notify_writes", None)) or not isinstance(table, str):
            raise click.ClickException("install-trigger needs a postgresql:// store URL")
        text = trigger_sql(table, channel or default_channel(store.identity), remove=remove)
        if print_sql:
            click.echo(text, nl=False)
            return
        import psycopg

        parsed = parse_url(url)
        base = parsed.render(hide_password=False).replace("postgres://", "postgresql://", 1)
        try:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(text.encode())
        except psycopg.Error as exc:
            action = "remove" if remove else "add"
            raise click.ClickException(f"could not {action} the trigger: {exc}") from None
        done = "removed from" if remove else "installed on"
        used = channel or default_channel(store.identity)
        click.echo(f"writethrough notify trigger {done} {table} (channel {used})")
    except wt.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
