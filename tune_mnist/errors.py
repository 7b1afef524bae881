"""The one exception type users see: a message meant to be printed as a single line."""


class TuneMnistError(Exception):
    """A problem with the user's input or environment, phrased as one readable line.

    The CLI prints it and exits with code 1; anything else is a bug and keeps its traceback.
    """
