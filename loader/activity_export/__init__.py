"""activity-export: deliver each tenant's e-mail activity and broadcast files."""

__version__ = "0.1.0"
