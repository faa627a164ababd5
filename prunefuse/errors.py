"""The one error type of bad input, shared by the method core and the study layer."""


class ConfigError(ValueError):
    """A parameter is wrong; the message names it and what is allowed."""
