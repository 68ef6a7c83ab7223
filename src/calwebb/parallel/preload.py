"""Imported once by the process-pool server before it forks workers: every step class."""

from calwebb.stpipe.registry import classes

classes()
