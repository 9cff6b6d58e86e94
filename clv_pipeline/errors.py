"""Errors that carry a message meant for the person on call (no library traceback needed)."""


class ClvError(Exception):
    """Base class: the message names the file, column and values at fault."""


class InputError(ClvError):
    """An input file or partition cannot be used as delivered."""


class PublishError(ClvError):
    """A table failed its audit or could not be published; the previous snapshot is intact.

    ``checks`` holds the problems found per audit check (empty when the failure was I/O).
    """

    def __init__(
        self, message: str, *, table: str = "", checks: dict[str, list[str]] | None = None
    ):
        super().__init__(message)
        self.table = table
        self.checks = checks or {}
