from lending import codes


def test_new_codes_use_only_unambiguous_characters():
    seen = {codes.new_code() for _ in range(2000)}
    assert len(seen) == 2000
    for code in seen:
        assert len(code) == 8
        assert not set(code) & set("ILOU")
        assert set(code) <= set(codes.ALPHABET)


def test_typed_codes_are_folded_to_the_canonical_form():
    assert codes.normalise(" ab1o-il23 ") == "AB101123"
    assert codes.normalise("m7k4 2qxd") == "M7K42QXD"
    assert codes.normalise("") == ""
    assert codes.normalise("abc!") == ""
    assert codes.normalise("ü") == ""


def test_codes_display_in_groups_of_four():
    assert codes.display("M7K42QXD") == "M7K4-2QXD"
