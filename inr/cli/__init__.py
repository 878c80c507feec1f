"""The `inr` command line (entry point `inr.cli.main:main`)."""
