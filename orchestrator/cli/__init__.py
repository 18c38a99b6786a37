"""The `laxai` command line: ``commands`` (the Typer app), ``views`` (tables and progress it
prints) and ``client`` (the REST client it calls the service with)."""
