"""The one error type for bad input.

Anything a user can get wrong (a malformed architecture string, an unknown dataset, a class out of range, a
corrupt file, a request too large for the budget) raises `IgpgError` with a one-line message that says what was
wrong and what is allowed. The CLI prints it as `error: <message>` and exits with code 2; the Python API lets it
propagate.
"""

MAX_MESSAGE = 400  # characters of an error line; longer messages (an offending value echoed whole) are cut


class IgpgError(ValueError):
    """Bad input from the user: a one-line message, shown as is."""


def one_line(e: BaseException | str, limit: int = MAX_MESSAGE) -> str:
    """The message as one line of at most `limit` characters; an exception that is not an `IgpgError` is named
    by its type (a MemoryError says nothing by itself)."""
    text = " ".join(str(e).split())
    if isinstance(e, BaseException) and not isinstance(e, IgpgError):
        kind = "out of memory" if isinstance(e, MemoryError) else type(e).__name__
        text = f"{kind}: {text}" if text else kind
    text = text or (type(e).__name__ if isinstance(e, BaseException) else "")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate would not print
    return text if len(text) <= limit else text[: limit - 3] + "..."
