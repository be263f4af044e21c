"""Keystone: a modular monolith whose modules can each be lifted into a service of its own."""
