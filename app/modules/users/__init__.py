"""Users: accounts, credentials and roles."""
