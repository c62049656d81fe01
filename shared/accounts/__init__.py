"""The account core: registering, passwords, deletion, and Mobile Services' legacy hashes.

- :mod:`.service`: the use cases (``AccountService``: register, change the password, delete);
- :mod:`.authentication`: the gate's check of a token, refresh, ending sessions;
- :mod:`.token_refresh`: ``POST /api/token/refresh``: a refresh token spent for the next (rotation, the
  grace retry, reuse), with :mod:`.token_refresh_store`, the ETag-guarded write on its session;
- :mod:`.store`: the account core's reads and writes (``AccountStore``); beside it
  :mod:`.rows` (the account's two rows), :mod:`.aliases` (legacy user ids),
  :mod:`.moves` (finishing an email's move), :mod:`.import_store` (the importer's);
- :mod:`.passwords`: Argon2id hashing and the password policy;
- :mod:`.emails`: normalizing an email address;
- :mod:`.mobile_services`: the hashes and tokens of the Mobile Services sample this replaces.

Logging in is :mod:`shared.login`, above this package and the second factor.
"""
