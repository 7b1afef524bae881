"""The one exception type users see (a message meant to be printed as a single line), and
the exit codes the command ends with."""

EXIT_ERROR = 1  # a TuneMnistError: bad input or environment, said in one line
EXIT_INCOMPLETE = 3  # the sweep ended with trials left to run: `tune-mnist resume` goes on
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT) reached the command
EXIT_TERMINATED = 143  # SIGTERM (Slurm, Kubernetes): a clean stop, then this code


class TuneMnistError(Exception):
    """A problem with the user's input or environment, phrased as one readable line.

    The CLI prints it and exits with code 1; anything else is a bug and keeps its traceback.
    """


MAX_SHOWN = 300  # characters of a user's value an error shows: input can be huge


def shown(value: object) -> str:
    """A value as an error message shows it (repr), cut to MAX_SHOWN characters."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"... ({len(text):,} chars)"


def first_line(error: BaseException) -> str:
    """An exception's message cut to its first line, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
