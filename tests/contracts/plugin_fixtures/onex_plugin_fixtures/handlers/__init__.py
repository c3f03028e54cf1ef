"""Handlers, good and bad. Importing the package itself leaves no marker."""
