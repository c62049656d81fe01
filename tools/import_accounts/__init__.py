"""The importer (``python -m tools.import_accounts``): accounts from a Mobile Services export.

- :mod:`.command`: the command line and its phases;
- :mod:`.rows`: streamed reading and validation of the export;
- :mod:`.partitions`: the storage work, one whole partition at a time.
"""
