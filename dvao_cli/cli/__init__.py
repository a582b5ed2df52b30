"""The command line: the typer app (app.py), its options (options.py) and option values
(values.py), the console, the terminal report, and one module per command (commands/)."""
