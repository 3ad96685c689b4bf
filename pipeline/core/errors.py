"""The one exception type a user sees: a message that says what is wrong and what to do."""


class PipelineError(Exception):
    """A problem the user can fix (bad params, missing file, missing credentials).

    The CLI prints its message as one line and exits non-zero, without a traceback.
    """

    def naming_command(self, command: str) -> "PipelineError":
        """This error as the command `command` (which raised it) reports it: the same, unless its fix is to run that
        command again (`pipeline.core.atomic.DiskFullError`), which then names it."""
        return self
