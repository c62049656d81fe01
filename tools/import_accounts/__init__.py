"""The importer (``python -m tools.import_accounts``): accounts from a Mobile Services export.

- :mod:`.command`: the command line, what it prints and its exit status;
- :mod:`.phases`: the import's phases (validate and spool, aliases, accounts);
- :mod:`.workers`: where the work runs (worker processes), and how an import stops;
- :mod:`.summary`: what an import did, row by row where it matters;
- :mod:`.progress`: the progress bars and the progress listener;
- :mod:`.rows`: streamed reading and validation of the export;
- :mod:`.partitions`: the storage work, one whole partition at a time.
"""
