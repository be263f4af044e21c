"""What other modules may know about users: the events it publishes."""

from app.modules.users.contracts.events import UserErased, UserRegistered

__all__ = ["UserErased", "UserRegistered"]
