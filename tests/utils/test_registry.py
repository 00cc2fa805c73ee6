import pytest

from restore.utils.registry import Registry


def test_register_and_get_by_exact_name():
    reg = Registry("thing")

    @reg.register()
    class Alpha:
        pass

    reg.register(len, name="length")
    assert reg.get("Alpha") is Alpha
    assert reg.get("length") is len
    assert "Alpha" in reg and "alpha" not in reg
    assert reg.keys() == ["Alpha", "length"]


def test_unknown_name_lists_registered_and_suggests_close_match():
    reg = Registry("arch")
    reg.register(type("HAT", (), {}))
    reg.register(type("DRCT", (), {}))
    with pytest.raises(KeyError) as err:
        reg.get("HATT")
    message = err.value.args[0]
    assert "unknown arch type 'HATT'" in message
    assert "Did you mean 'HAT'" in message
    assert "Registered: DRCT, HAT" in message


def test_no_case_folding_or_suffix_fallback():
    reg = Registry("model")
    reg.register(type("SRModel", (), {}))
    for wrong in ("srmodel", "SRModel_basicsr"):
        with pytest.raises(KeyError):
            reg.get(wrong)


def test_duplicate_name_is_an_error():
    reg = Registry("loss")
    reg.register(type("L1Loss", (), {}))
    with pytest.raises(KeyError, match="already registered"):
        reg.register(type("L1Loss", (), {}))
