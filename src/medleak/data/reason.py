"""One-line reasons for DataError messages, from whatever a decoder raised."""

from __future__ import annotations


def short_reason(exc: BaseException, limit: int = 120, path: object = None) -> str:
    """First line of an exception's message (or its type), cut to ``limit`` characters.

    ``path``: the file the decoder was given. Decoders repeat it in their messages ("cannot
    identify image file '/data/.../person12_virus_3.jpeg'"); the caller already names the file
    (by its pseudonym, in the end), and a name cut by ``limit`` could no longer be recognised
    and hidden, so the path is replaced by "the file" first.
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if path is not None:
        text = text.replace(f"'{path}'", "the file").replace(str(path), "the file")
    return text if len(text) <= limit else text[: limit - 3] + "..."
