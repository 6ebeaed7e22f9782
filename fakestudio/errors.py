"""User mistakes: the CLI prints the message on one line and exits with code 2."""


class UserError(Exception):
    """A problem the user can fix (bad file, bad option). Never shown as a traceback."""
