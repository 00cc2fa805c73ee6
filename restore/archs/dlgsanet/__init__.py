"""Placeholder until the family lands: recognises no checkpoint."""


def detect(state_dict):  # noqa: ANN001, ANN201
    return None
