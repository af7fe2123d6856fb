"""GPT-2's byte-level alphabet: each byte as one printable character, and back.

Byte-level BPE vocabularies (GPT-2, Llama 3, Qwen 3) spell every token in
this alphabet (a space is `Ġ`), so a token's bytes are read off its string.

Example:
>>> token_bytes("Ġhé".replace("é", "Ã©"))
b' h\\xc3\\xa9'
"""


def bytes_to_unicode():
    """`{byte: character}`: printable bytes map to themselves, the rest above 255."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return {byte: chr(c) for byte, c in zip(printable, characters)}


_UNICODE_TO_BYTE = {c: b for b, c in bytes_to_unicode().items()}


def token_bytes(token):
    """The bytes a byte-level token string stands for; None if it is not one (a special)."""
    try:
        return bytes(_UNICODE_TO_BYTE[c] for c in token)
    except KeyError:
        return None
