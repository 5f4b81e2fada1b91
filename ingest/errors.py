"""The user-error family: mistakes a user can fix, as opposed to bugs.

A ``UserError`` (a bad flag value, a config typo, a missing or malformed file, a node that cannot be
reached) ends a command with its one-line message and exit code 2. Any other exception is a bug:
the command prints its traceback. Every layer's error classes for user mistakes derive from it, so
the command line names one class, not a list.
"""


class UserError(Exception):
    """A mistake the user can fix; its message says what and where, on one line."""
