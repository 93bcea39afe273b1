"""Preferences (not legal consent): channels, topics and frequency, with history."""
