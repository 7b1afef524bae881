"""The one exception type users see: a message meant to be printed as a single line."""


class TuneMnistError(Exception):
    """A problem with the user's input or environment, phrased as one readable line.

    The CLI prints it and exits with code 1; anything else is a bug and keeps its traceback.
    """


def first_line(error: BaseException) -> str:
    """An exception's message cut to its first line, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
