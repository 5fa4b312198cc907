"""One module per subcommand: its options, and a body that calls the core and renders.

Each module imports only typer at load time (the core is imported inside the command), so
``recovery --help`` stays light. Errors are turned into a line and an exit code once, by
``cli.dispatched``; a command returns its exit code. Importing the package makes the
parser's help and usage errors read as ``help_format`` says."""

from recovery_cli.commands import help_format

help_format.install()
