"""The one exception type a user sees: a message that says what is wrong and what to do."""


class PipelineError(Exception):
    """A problem the user can fix (bad params, missing file, missing credentials).

    The CLI prints its message as one line and exits non-zero, without a traceback.
    """
