"""The one error type the CLI turns into a single clear line instead of a stack trace."""


class StackError(Exception):
    """A problem the user can fix: a missing prerequisite, a busy port, a component that failed."""
