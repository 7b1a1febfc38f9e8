"""Example programs shipped with opbsim (package data)."""
