"""The one exception type that reaches the user as a message, not a traceback."""


class TuneloopError(Exception):
    """A problem with the user's input or environment, explained in plain words.

    The CLI prints the message and exits with status 2; everything else is a bug and keeps
    its traceback.
    """


class DataError(TuneloopError):
    """Bad data: the message names the file, the line (or row) and the field."""


class ConfigError(TuneloopError):
    """Bad configuration: the message names the key path that is wrong."""


class ModelError(TuneloopError):
    """A model that cannot be found or may not be loaded safely."""


class StoreError(TuneloopError):
    """A store operation that cannot be done as asked (wrong stage, run folder gone, bad feedback)."""


class NotFoundError(StoreError):
    """A version, request or API key the store does not hold; the server answers 404 for these."""
