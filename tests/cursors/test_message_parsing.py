"""The cursor app's parser gives the same answer on every Python version and on both of its
parsers (issue #10, finding 8).

Messages are read by orjson; one that orjson refuses (a number past a double, 1e999) is read
again by the standard library, so that its coordinates are "bad coordinates", not "not JSON".
The two differ in how deep they nest: orjson 1024 levels; the standard parser up to the
interpreter's recursion limit, which on 3.11 is `sys.getrecursionlimit()` frames (1000) but on
3.12+ the much larger C recursion limit. Before, a v2 move with an extra field nested 1100 deep
was "not JSON" on 3.11 and a broadcast move on 3.13. Now nesting is bounded by `MAX_DEPTH`
(32 levels, the top-level object included), checked before either parser can recurse, so
every case below has one answer everywhere.
"""

from __future__ import annotations

import orjson
import pytest

from cursorshare.cursors.messages import (
    MAX_DEPTH,
    BadMessage,
    clean_name,
    parse_tutorial_move,
    parse_v2_move,
)


def nested(levels: int) -> str:
    """A JSON value of ``levels`` nested arrays."""
    return "[" * levels + "]" * levels


def v2(extra: str, x: str = "0.5") -> str:
    return '{"type":"move","x":' + x + ',"y":0.5,"e":' + extra + "}"


def tutorial(extra: str, x: str = "640") -> str:
    return '{"x":' + x + ',"y":200,"e":' + extra + "}"


# The top-level object is one level: an extra field may nest MAX_DEPTH - 1 more.
FITS = MAX_DEPTH - 1
DEPTHS = [FITS, FITS + 1, 990, 1100, 5000, 30_000]


@pytest.mark.parametrize("levels", DEPTHS)
@pytest.mark.parametrize("fallback", [False, True], ids=["orjson", "fallback"])
def test_v2_nesting_has_one_answer(levels: int, fallback: bool) -> None:
    # 1e999 elsewhere in the message sends it to the standard parser.
    text = v2(nested(levels)) if not fallback else v2(nested(levels))[:-1] + ',"z":1e999}'
    if levels <= FITS:
        assert parse_v2_move(text) == (0.5, 0.5, None)
    else:
        with pytest.raises(BadMessage, match=r"^not JSON$"):
            parse_v2_move(text)


@pytest.mark.parametrize("levels", DEPTHS)
@pytest.mark.parametrize("fallback", [False, True], ids=["orjson", "fallback"])
def test_v2_bad_coordinates_come_after_the_nesting_check(levels: int, fallback: bool) -> None:
    text = v2(nested(levels), x="1e999" if fallback else "2")
    expected = "bad coordinates" if levels <= FITS else "not JSON"
    with pytest.raises(BadMessage, match=rf"^{expected}$"):
        parse_v2_move(text)


@pytest.mark.parametrize("levels", DEPTHS)
def test_tutorial_nesting_has_one_answer(levels: int) -> None:
    text = tutorial(nested(levels))
    if levels <= FITS:
        assert parse_tutorial_move(text)["e"] is not None
    else:
        with pytest.raises(BadMessage, match=r"^not JSON$"):
            parse_tutorial_move(text)


def test_objects_count_as_levels_like_arrays() -> None:
    deep_objects = '{"a":' * FITS + "1" + "}" * FITS
    assert parse_tutorial_move(tutorial(deep_objects))["e"]
    with pytest.raises(BadMessage, match=r"^not JSON$"):
        parse_tutorial_move(tutorial('{"a":' + deep_objects + "}"))


def test_brackets_inside_strings_do_not_count() -> None:
    text = tutorial('"' + "[{" * 200 + '\\"' + "]}" + '"', x="1e999")
    with pytest.raises(BadMessage, match=r"^bad coordinates$"):  # read, not refused as deep
        parse_tutorial_move(text)


def test_the_depth_limit_is_a_setting() -> None:
    text = tutorial(nested(3))
    assert parse_tutorial_move(text, max_depth=4)["e"] == [[[]]]
    with pytest.raises(BadMessage, match=r"^not JSON$"):
        parse_tutorial_move(text, max_depth=3)


@pytest.mark.parametrize(
    "extra",
    # orjson reads integers past 64 bits as floats; past a double it refuses them, and the
    # standard parser reads them as exact integers.
    ["1e999", "-1e999", "1" + "0" * 400, "-" + "9" * 400, "[1e400]", '{"k":1e999}'],
    ids=["inf", "-inf", "huge-int", "huge-negative-int", "nested-inf", "nested-in-object"],
)
def test_tutorial_extras_must_encode_as_they_came(extra: str) -> None:
    """orjson would write an infinity as null and cannot write integers past 64 bits."""
    with pytest.raises(BadMessage, match=r"^not JSON$"):
        parse_tutorial_move(tutorial(extra))


@pytest.mark.parametrize("extra", ["18446744073709551615", "-9223372036854775808", "1e308"])
def test_tutorial_extras_at_the_encoder_limits_pass(extra: str) -> None:
    assert parse_tutorial_move(tutorial(extra))["e"] == pytest.approx(float(extra))


@pytest.mark.parametrize(
    "text",
    [
        r'{"type":"move","x":0.5,"y":0.5,"name":"\ud800"}',
        r'{"type":"move","x":0.5,"y":0.5,"name":"ok","e":["\udfff"]}',
        r'{"type":"move","x":0.5,"y":0.5,"\ud800\udc00\udc00":1}',
        r'{"type":"move","x":1e999,"y":0.5,"name":"\ud800"}',
    ],
    ids=["name", "nested-value", "key-with-a-lone-low-surrogate", "with-bad-coordinates"],
)
def test_v2_lone_surrogates_are_not_json(text: str) -> None:
    with pytest.raises(BadMessage, match=r"^not JSON$"):
        parse_v2_move(text)


def test_a_surrogate_pair_escape_is_a_character() -> None:
    assert parse_v2_move(r'{"type":"move","x":0,"y":1,"name":"\ud83d\ude00"}')[2] == "\U0001f600"


@pytest.mark.parametrize("name", ["\ud800", "a\udfffb", "\udbff\ud800"])
def test_a_name_with_a_lone_surrogate_is_refused_wherever_it_comes_from(name: str) -> None:
    """`clean_name` also checks the session URL's `name` (ignored when refused)."""
    with pytest.raises(BadMessage, match=r"^bad name$"):
        clean_name(name)


def test_a_flat_message_with_many_brackets_in_strings_is_not_too_deep() -> None:
    name = "[{" * 16
    assert parse_v2_move('{"type":"move","x":0,"y":0,"name":"' + name + '"}')[2] == name


@pytest.mark.parametrize(
    "name",
    [
        "Ada\u202eevE",  # RIGHT-TO-LEFT OVERRIDE (Cf): the label reads "AdaEve" backwards
        "Ada\u2066x\u2069",  # LEFT-TO-RIGHT ISOLATE ... POP DIRECTIONAL ISOLATE (Cf)
        "A\u200bda",  # ZERO WIDTH SPACE (Cf): looks like "Ada"
        "A\u200dda",  # ZERO WIDTH JOINER (Cf)
        "\ufeffAda",  # BYTE ORDER MARK / ZERO WIDTH NO-BREAK SPACE (Cf)
        "Ada\U000e0041",  # TAG LATIN CAPITAL LETTER A (Cf)
        "\u00adAda",  # SOFT HYPHEN (Cf)
        "\u3164",  # HANGUL FILLER (Lo, but blank): a name that looks empty
        "A\u034fda",  # COMBINING GRAPHEME JOINER (Mn, default ignorable)
        "Ada\ufe00",  # VARIATION SELECTOR-1 (Mn, default ignorable)
        "A\u2028da",  # LINE SEPARATOR (Zl)
        "\ue000",  # private use (Co)
        "\u0378",  # unassigned (Cn)
    ],
)
def test_a_name_with_an_invisible_or_format_character_is_refused(name: str) -> None:
    """The red-team finding: bidi overrides and zero-width characters let a name pass for
    another one. The same check covers the session URL's `name` (refused: no name)."""
    with pytest.raises(BadMessage, match=r"^bad name$"):
        clean_name(name)
    message = orjson.dumps({"type": "move", "x": 0, "y": 0, "name": name}).decode()
    with pytest.raises(BadMessage, match=r"^bad name$"):
        parse_v2_move(message)


@pytest.mark.parametrize("name", ["Zoë", "日本語", "Ada Lovelace", "❤️", "\U0001f600", "Ana\u00a0B"])
def test_names_in_any_script_and_emoji_with_their_presentation_selector_pass(name: str) -> None:
    assert clean_name(name) == name
