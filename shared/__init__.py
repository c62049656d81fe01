"""Code shared by every function of the app: tokens, passwords, accounts, settings, HTTP.

Function folders import modules from here by absolute name
(``from shared import tokens``); each module documents its own public names.
"""
