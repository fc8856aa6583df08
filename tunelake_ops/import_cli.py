"""``tunelake import listens FILE``: bring listening history in, as the API would take it.

The API is for live traffic; months or years of plays come in through this command (see
``tunelake_ops.history_import``): the same validity rule, event ids and topic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tunelake.settings import get_settings
from tunelake_ops.jobs import fail

importer = typer.Typer(help="Bulk imports of history.", no_args_is_help=True)
console = Console(stderr=True)


@importer.command("listens")
def listens(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="CSV, JSON lines or Parquet: user_id, track_id, played_at, ms_played "
            "[, context, source_id].",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count every row; send nothing.")
    ] = False,
) -> None:
    """Import plays into the listens topic: checked, deduplicated, acknowledged."""
    from ingestion.producer import PublishError
    from tunelake_ops.history_import import ImportFileError, ImportSummary, import_listens

    def progress(summary: ImportSummary) -> None:
        console.print(
            f"  {summary.rows:,} rows read, {summary.refused_total:,} refused, "
            f"{summary.published:,} sent",
            highlight=False,
        )

    try:
        summary = import_listens(get_settings(), file, dry_run=dry_run, progress=progress)
    except (ImportFileError, PublishError) as exc:
        raise fail(exc) from None
    table = Table(title=f"import of {file.name}{' (dry run: nothing sent)' if dry_run else ''}")
    table.add_column("rows")
    table.add_column("count", justify="right")
    for label, count in (
        ("read", summary.rows),
        ("accepted", summary.accepted),
        ("sent to Kafka", summary.published),
        ("already in the lake", summary.already_in_lake),
        ("duplicates in the file", summary.duplicates_in_file),
        *((f"refused: {reason}", n) for reason, n in summary.refused.most_common()),
    ):
        table.add_row(label, f"{count:,}")
    Console().print(table)
