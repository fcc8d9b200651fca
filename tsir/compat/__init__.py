"""Compatibility layers that let programs written for other tile languages run on tsir."""
