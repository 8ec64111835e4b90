"""The one error type for bad input.

Anything a user can get wrong (a malformed architecture string, an unknown dataset, a class out of range, a
corrupt file) raises `IgpgError` with a one-line message that says what was wrong and what is allowed. The CLI
prints it as `error: <message>` and exits with code 2; the Python API lets it propagate.
"""


class IgpgError(ValueError):
    """Bad input from the user: a one-line message, shown as is."""
