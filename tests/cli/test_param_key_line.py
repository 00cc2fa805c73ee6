"""The log line on the checkpoint key says what was looked for and what was found."""

from __future__ import annotations

from restore.evaluate import param_key_line, select_params


def test_param_key_line_names_what_was_looked_for_and_found() -> None:
    lines: list[str] = []
    state, key = select_params({"params": {"w": 1}}, "params_ema", lines.append)
    assert key == "params" and param_key_line("params_ema", key) == ", with param key: [params]."  # BasicSR's words
    state, key = select_params({"w": 1}, "params_ema", lines.append)
    assert key is None and state == {"w": 1}
    line = param_key_line("params_ema", key)
    assert "looked for param key params_ema, then params" in line and "found neither" in line
    assert "top level is loaded" in line and "nor" not in line
    assert param_key_line("params", None).startswith(": looked for param key params, found neither")
