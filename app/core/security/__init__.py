"""Authentication and authorisation shared by every module: tokens, passwords, roles."""
