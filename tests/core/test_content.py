from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from core.content import Content, parse_content
from core.errors import ContentTypeError, EmptyVideoError, InvalidInputError


def test_strings_and_mappings_parse_to_content():
    assert parse_content("hello") == Content(texts=("hello",))
    assert parse_content("").is_empty
    mixed = parse_content({"text": ["a", "b"], "image": ["x.png", b"\x89PNG"], "video": "clip.mp4"})
    assert (
        mixed.texts == ("a", "b") and mixed.images == ("x.png", b"\x89PNG") and mixed.videos == ("clip.mp4",)
    )
    assert mixed.modalities == ("video", "image", "text")
    picture = Image.new("RGB", (4, 4))
    assert parse_content(picture).images == (picture,)
    frames = parse_content({"video": [picture, "f2.png"]})
    assert frames.videos == ((picture, "f2.png"),)
    assert parse_content({"text": None, "image": "a.png"}).modalities == ("image",)


def test_content_passes_through():
    content = Content(texts=("t",))
    assert parse_content(content) is content


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ({"audio": "x.wav"}, ContentTypeError, "unknown content type 'audio'"),
        ({"text": 3}, InvalidInputError, "'text' must be a string"),
        ({"image": 3.5}, InvalidInputError, "image 0"),
        ({"video": 7}, InvalidInputError, "'video'"),
        ({"video": []}, EmptyVideoError, "no frames"),
        (b"raw", ContentTypeError, "ambiguous"),
        (Path("x.png"), ContentTypeError, "ambiguous"),
        (None, InvalidInputError, "NoneType"),
        (12, InvalidInputError, "int"),
    ],
)
def test_bad_content_raises_typed_errors_naming_the_item(value, error, message):
    with pytest.raises(error, match=message) as info:
        parse_content(value, where="document 7")
    assert "document 7" in str(info.value)


def test_within_keeps_the_error_type():
    err = EmptyVideoError("video 0: no frames").within("document 2")
    assert isinstance(err, EmptyVideoError)
    assert str(err) == "document 2: video 0: no frames"


def test_located_names_the_item_and_keeps_type_and_cause():
    from core.errors import located

    expected = r"^document 4: video 1: no frames$"
    with pytest.raises(EmptyVideoError, match=expected) as info, located("document 4"), located("video 1"):
        raise EmptyVideoError("no frames")
    assert isinstance(info.value.__cause__, EmptyVideoError)
    # Only our own errors are renamed; anything else passes through untouched.
    with pytest.raises(KeyError), located("document 4"):
        raise KeyError("x")
