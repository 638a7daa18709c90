"""Exceptions that reach the user as one clear line.

Everything that is the user's fault (a missing file, an unknown channel, NaN input) raises a
subclass of :class:`FlamesyncError`; the CLI prints its message on one line and exits non-zero.
Anything else escaping is a bug in flamesync and is reported as such.
"""


class FlamesyncError(Exception):
    """Base class for errors caused by input, configuration or environment."""


class InputError(FlamesyncError, ValueError):
    """Bad user input: unreadable or malformed file, invalid values, unknown names."""


class MissingDependencyError(FlamesyncError, ImportError):
    """An optional dependency that a requested feature needs is not installed."""


class ModelFileError(FlamesyncError):
    """A face-model or checkpoint file is missing, corrupt or of an unknown layout."""


def require(module: str, *, feature: str, install: str):
    """Import an optional dependency or fail with a message saying what to install.

    Parameters
    ----------
    module : str
        Importable module name, e.g. ``"pyrender"``.
    feature : str
        What the user asked for, e.g. ``"preview rendering"``.
    install : str
        The command that installs it, e.g. ``"pip install 'flamesync[render]'"``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the Python module '{module}' ({exc}); install it with: {install}"
        ) from None
