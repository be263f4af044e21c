"""What other modules may know about users: its facade, its DTOs and its events."""

from app.modules.users.contracts.events import UserErased, UserRegistered
from app.modules.users.contracts.facade import Contact, UsersFacade

__all__ = ["Contact", "UserErased", "UserRegistered", "UsersFacade"]
