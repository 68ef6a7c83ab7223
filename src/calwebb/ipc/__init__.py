"""The ipc step."""
