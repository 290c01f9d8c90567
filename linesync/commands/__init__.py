"""One module per `linesync` subcommand (or group of subcommands)."""
