"""The one error type a user of sn ever sees."""


class SNError(Exception):
    """An error in an sn program, its input files or its command line.

    `message` is the text; the interpreter adds where it happened (`where`, a
    Location or None) and the chain of enclosing calls (`frames`, innermost
    first, each [description, Location, count]).
    """

    def __init__(self, message, where=None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.frames = []

    MAX_FRAMES = 12

    def add_frame(self, what, loc):
        """Record an enclosing call; runs of the same call are counted, not repeated."""
        if self.frames and self.frames[-1][:2] == [what, loc]:
            self.frames[-1][2] += 1
        elif len(self.frames) < self.MAX_FRAMES:
            self.frames.append([what, loc, 1])
        else:
            self.hidden += 1

    hidden = 0

    def __str__(self):
        lines = []
        if self.where is not None:
            lines.append(f"{self.where}: {self.message}")
        else:
            lines.append(self.message)
        for what, loc, count in self.frames:
            line = f"  in {what}" + (f" at {loc}" if loc is not None else "")
            lines.append(line + (f" ({count} times)" if count > 1 else ""))
        if self.hidden:
            lines.append(f"  ... and {self.hidden} more enclosing calls")
        return "\n".join(lines)

    def report(self):
        """The message with the source line and a caret, as the command line prints it."""
        text = str(self)
        caret = self.where.caret() if self.where is not None and hasattr(self.where, "caret") else ""
        if not caret:
            return text
        first, _, rest = text.partition("\n")
        return "\n".join(part for part in (first, caret, rest) if part)
