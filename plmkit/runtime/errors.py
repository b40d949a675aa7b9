"""The one exception the CLI shows without a traceback.

`UserError` marks a mistake in the user's input (a missing file, a bad column): the CLI
prints its message on one line and exits 2.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input; the message names the file, line or field."""
