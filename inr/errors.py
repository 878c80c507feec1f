"""Errors the command line reports as one line with exit code 2 (bad input, not a bug)."""


class InputError(ValueError):
    """Bad user input: a missing or corrupt file, an unknown name, an invalid config.

    The message is one line that names the file or option and the problem.
    """
