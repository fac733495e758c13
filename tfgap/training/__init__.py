"""The one trainer for every strategy."""
