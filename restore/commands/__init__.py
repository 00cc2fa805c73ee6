"""The ``restore`` sub-commands, built on one set of parser conventions (:mod:`restore.commands.common`)."""
