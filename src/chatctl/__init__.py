"""chatctl: the operations tool for a customer-support chat desk."""

__version__ = "0.1.0"
