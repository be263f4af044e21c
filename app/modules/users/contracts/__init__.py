"""What other modules may know about users: the events it publishes."""

from app.modules.users.contracts.events import UserRegistered

__all__ = ["UserRegistered"]
