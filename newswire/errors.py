"""Exception types shared by every part of Newswire.

Callers catch :class:`NewswireError` to handle any failure the project raises on purpose, and the
subclasses when they can do something specific (retry later, fix a setting, re-drive a message).
"""

from __future__ import annotations


class NewswireError(Exception):
    """Base of every error Newswire raises deliberately (as opposed to bugs)."""


class SettingsError(NewswireError):
    """The configuration is invalid; the message lists every problem so one edit can fix them all."""


class BrokerUnavailable(NewswireError):
    """Kafka could not be reached or did not acknowledge in time; the operation may succeed later."""


class WarehouseUnavailable(NewswireError):
    """The warehouse could not be opened or locked; nothing was written, the caller may retry."""


class ContractError(NewswireError):
    """A message does not match its topic's contract (undecodable JSON or schema violation).

    ``reason`` is a short stable code for dead-letter records; ``details`` the validator's message.
    """

    def __init__(self, reason: str, details: str) -> None:
        super().__init__(f"{reason}: {details}")
        self.reason = reason
        self.details = details
