"""The operator's tool (``python -m tools.admin``); the operations are in :mod:`shared.operations.admin`."""
