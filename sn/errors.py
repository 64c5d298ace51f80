"""The one error type a user of sn ever sees."""


class SNError(Exception):
    """An error in an sn program, its input files or its command line.

    `message` is the text; the interpreter adds where it happened
    (`where`, a Location or None) and the chain of enclosing calls (`frames`,
    a list of (description, Location)), innermost first.
    """

    def __init__(self, message, where=None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.frames = []

    def __str__(self):
        lines = []
        if self.where is not None:
            lines.append(f"{self.where}: {self.message}")
        else:
            lines.append(self.message)
        for what, loc in self.frames:
            lines.append(f"  in {what}" + (f" at {loc}" if loc is not None else ""))
        return "\n".join(lines)
