"""Output bytes into text lines, as a task's process writes them."""

from __future__ import annotations

import codecs
import re

__all__ = ["MAX_LINE_BYTES", "TRUNCATED_SUFFIX", "LineSplitter"]

MAX_LINE_BYTES = 64 * 1024
"""Longest line delivered, in bytes of output; the rest of a longer line is dropped."""

TRUNCATED_SUFFIX = " …[truncated]"
"""Appended to a line cut at :data:`MAX_LINE_BYTES`."""

_TERMINATOR = re.compile(rb"\r\n?|\n")


class LineSplitter:
    """Split a byte stream into text lines; feed it chunks as they arrive.

    A line ends at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (POV-Ray and ffmpeg separate progress
    updates with carriage returns). Bytes are decoded as UTF-8, invalid bytes replaced. A line
    longer than ``max_line_bytes`` is delivered cut to that size with :data:`TRUNCATED_SUFFIX`
    as soon as it overflows, and the rest of it is dropped.

    Empty lines: a blank line ended by ``\\n`` or ``\\r\\n`` is delivered as ``""``; the empty
    pieces a lone ``\\r`` produces (``"\\r\\r"``, a leading ``"\\r"``) are dropped.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._buf = bytearray()
        self._discarding = False  # this line was already delivered truncated
        self._cr_pending = False  # the last chunk ended in "\r": a leading "\n" completes "\r\n"
        self._cr_empty = False  # ...and the line that "\r" ended was empty

    def feed(self, data: bytes) -> list[str]:
        """Take the next chunk of the stream; return the lines it completes."""
        lines: list[str] = []
        if not data:
            return lines
        pos = 0
        if self._cr_pending:
            self._cr_pending = False
            if data[0] == 0x0A:
                pos = 1
                if self._cr_empty:
                    lines.append("")
            self._cr_empty = False
        view = memoryview(data)
        for match in _TERMINATOR.finditer(data, pos):
            self._take(view[pos : match.start()], lines)
            pos = match.end()
            if match.end() - match.start() == 1 and data[match.start()] == 0x0D:
                self._end_line(lines, blank_is_line=False, at_chunk_end=pos == len(data))
            else:
                self._end_line(lines, blank_is_line=True, at_chunk_end=False)
        self._take(view[pos:], lines)
        return lines

    def flush(self) -> list[str]:
        """End of stream: return the last line if it had no terminator, and reset."""
        lines = [self._buf.decode("utf-8", "replace")] if self._buf else []
        self._buf.clear()
        self._discarding = self._cr_pending = self._cr_empty = False
        return lines

    def _take(self, piece: memoryview, lines: list[str]) -> None:
        if self._discarding or not piece:
            return
        room = self._max - len(self._buf)
        if len(piece) <= room:
            self._buf += piece
            return
        self._buf += piece[:room]
        # final=False leaves out a multi-byte character cut in half by the limit.
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        lines.append(decoder.decode(bytes(self._buf), final=False) + TRUNCATED_SUFFIX)
        self._buf.clear()
        self._discarding = True

    def _end_line(self, lines: list[str], *, blank_is_line: bool, at_chunk_end: bool) -> None:
        was_empty = not self._buf and not self._discarding
        if self._buf:
            lines.append(self._buf.decode("utf-8", "replace"))
            self._buf.clear()
        elif was_empty and blank_is_line:
            lines.append("")
        self._discarding = False
        if at_chunk_end:
            # Only the next chunk tells a lone "\r" from the first half of "\r\n".
            self._cr_pending = True
            self._cr_empty = was_empty
