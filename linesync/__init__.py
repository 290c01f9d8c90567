"""The `linesync` command line: process launchers and operator tools."""
