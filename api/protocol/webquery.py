"""WebAPI query strings, form bodies and XML bodies, decoded as their senders meant them.

Percent-escapes carry bytes, and not every client's bytes are UTF-8: older CTI clients send
Latin-1 (``user2=M%FCller``). Decoding those as UTF-8 would store U+FFFD in place of the
letter and answer 20, a silent corruption. So each name and value is read as UTF-8 when its
bytes are valid UTF-8, and otherwise as Latin-1 (ISO-8859-1), in which every byte is a
character: the same rule the socket API follows for 8-bit text.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from recorder.api.protocol.xmlcodec import parse_request

# More fields than any request type has, by far; a body with more is refused (413).
MAX_FIELDS = 1000


class TooManyFields(ValueError):
    """A query or form body with more than MAX_FIELDS fields."""


def decode_text(raw: bytes) -> str:
    """``raw`` as UTF-8 if it is that, else as Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_pairs(encoded: str | bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of an ``application/x-www-form-urlencoded`` text, in order:
    "+" is a space, a field without "=" has an empty value, empty fields are skipped."""
    text = encoded.decode("latin-1") if isinstance(encoded, bytes) else encoded
    pairs: list[tuple[str, str]] = []
    for field in text.split("&"):
        if not field:
            continue
        if len(pairs) == MAX_FIELDS:
            raise TooManyFields(f"more than {MAX_FIELDS} fields")
        name, _, value = field.partition("=")
        pairs.append((_unquote(name), _unquote(value)))
    return pairs


def _unquote(part: str) -> str:
    # latin-1 maps each character of the (ASCII) escaped text back to its byte.
    return decode_text(unquote_to_bytes(part.replace("+", " ").encode("latin-1", "replace")))


def xml_pairs(message: bytes) -> list[tuple[str, str]]:
    """The parameters of a request POSTed as XML, as if they had come in the query: the very
    request the socket API would read from the same bytes. RequestError (16) as it would."""
    request = parse_request(message)
    pairs = [("TYPE", request.type)]
    if request.request_id is not None:
        pairs.append(("REQUESTID", request.request_id))
    return pairs + list(request.params.items())
