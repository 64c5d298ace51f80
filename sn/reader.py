"""The reader: .sn text to S-expressions that remember where they were read.

    read_all(text, filename, intern) -> [datum, ...]

`intern(name)` gives the symbol of a name (the interpreter's symbol table).
Syntax errors are SNErrors located at file:line:col; an unclosed bracket is
reported at the bracket that was opened, an unterminated string at its quote,
a stray closing bracket at itself.
"""

import re
from importlib import resources

import lark
import numpy as np

from .datum import Cons, Location, is_number
from .errors import SNError

MAX_DEPTH = 1000

_GRAMMAR = resources.files(__package__).joinpath("grammar.lark").read_text()
_PARSER = lark.Lark(_GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False)

_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?\Z")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r", "0": "\0"}
_CLOSER = {"(": ")", "[": "]"}
_PREFIX = {"quote": "quote", "backquote": "backquote", "unquote": "unquote",
           "unquote_splicing": "unquote-splicing", "tilde": "null"}


def read_all(text, filename="<input>", intern=None, locations=False):
    """Every datum of `text`, in order; with `locations`, (datum, Location) pairs."""
    lines = text.splitlines() or [""]
    reader = _Reader(filename, lines, intern)
    tokens = reader.check_brackets(text)
    if not tokens:
        return []
    try:
        tree = _PARSER.parse(text)
    except lark.exceptions.UnexpectedInput as err:
        raise reader.parse_error(err) from None
    data = [reader.convert(child) for child in tree.children]
    if not locations:
        return data
    starts = [_first_token(child) for child in tree.children]
    return [(d, reader.loc(t.line, t.column)) for d, t in zip(data, starts)]


def is_incomplete(text):
    """True when `text` ends inside an open bracket or string: the REPL then
    asks for more lines instead of reporting an error."""
    try:
        _Reader("<input>", text.splitlines(), None).check_brackets(text)
    except SNError as err:
        return getattr(err, "incomplete", False)
    return False


def parse_atom(name, intern):
    """A number, or the symbol (keyword when it starts with ':') of `name`."""
    if _INT.match(name):
        return int(name)
    if _FLOAT.match(name):
        return float(name)
    lowered = name.lower()
    if lowered == "nil":
        return None
    return intern(lowered)


class _Reader:
    def __init__(self, filename, lines, intern):
        self.filename = filename
        self.lines = lines
        self.intern = intern

    def loc(self, line, col):
        return Location(self.filename, line, col, self.lines)

    def error(self, message, line, col, incomplete=False):
        err = SNError(message, self.loc(line, col))
        err.incomplete = incomplete
        return err

    def check_brackets(self, text):
        """Scan the tokens for bracket balance; return the token list."""
        stack = []
        tokens = []
        try:
            for tok in _PARSER.lex(text):
                tokens.append(tok)
                if tok.type in ("LPAR", "LBRACK"):
                    stack.append(tok)
                    if len(stack) > MAX_DEPTH:
                        raise self.error(f"brackets nested more than {MAX_DEPTH} deep",
                                         tok.line, tok.column)
                elif tok.type in ("RPAR", "RBRACK"):
                    self.close(stack, tok)
        except lark.exceptions.UnexpectedCharacters as err:
            if text[err.pos_in_stream] == '"':
                raise self.error("unterminated string (it starts here)",
                                 err.line, err.column, incomplete=True) from None
            raise self.error(f"unexpected character {text[err.pos_in_stream]!r}",
                             err.line, err.column) from None
        if stack:
            inner, outer = stack[-1], stack[0]
            message = f"unclosed {inner.value!r}: no matching {_CLOSER[inner.value]!r}"
            if outer is not inner:
                message += f" (the form opened at {outer.line}:{outer.column} is not closed either)"
            raise self.error(message, inner.line, inner.column, incomplete=True)
        if tokens and tokens[-1].type in ("QUOTE", "BACKQUOTE", "COMMA", "COMMA_AT", "TILDE"):
            tok = tokens[-1]
            raise self.error(f"{tok.value!r} at the end of the input, followed by nothing",
                             tok.line, tok.column, incomplete=True)
        return tokens

    def close(self, stack, tok):
        if not stack:
            raise self.error(f"unexpected {tok.value!r}: no bracket is open here",
                             tok.line, tok.column)
        opener = stack.pop()
        if _CLOSER[opener.value] != tok.value:
            raise self.error(
                f"{tok.value!r} closes the {opener.value!r} opened at "
                f"{opener.line}:{opener.column}; expected {_CLOSER[opener.value]!r}",
                tok.line, tok.column)

    def parse_error(self, err):
        tok = getattr(err, "token", None)
        if tok is not None and getattr(tok, "line", None) is not None:
            return self.error(f"unexpected {tok.value!r} after a quote character",
                              tok.line, tok.column)
        line = getattr(err, "line", 1) or 1
        col = getattr(err, "column", 1) or 1
        return self.error("syntax error", line, col)

    def convert(self, node):
        if isinstance(node, lark.Token):
            return self.atom(node)
        kind = node.data
        if kind == "list":
            return self.make_list(node)
        if kind == "matrix":
            return self.make_matrix(node)
        tok, inner = node.children
        symbol = self.intern(_PREFIX[kind])
        loc = self.loc(tok.line, tok.column)
        return Cons(symbol, Cons(self.convert(inner), None, loc), loc)

    def atom(self, tok):
        if tok.type == "STRING":
            return _unescape(tok.value[1:-1])
        return parse_atom(tok.value, self.intern)

    def make_list(self, node):
        opener, *items, _closer = node.children
        cells = []
        for item in items:
            start = item if isinstance(item, lark.Token) else _first_token(item)
            cells.append((self.convert(item), self.loc(start.line, start.column),
                          isinstance(item, lark.Token) and item.value == "."))
        tail = None
        if len(cells) >= 3 and cells[-2][2]:
            tail = cells[-1][0]
            cells = cells[:-2]
        elif any(dot for _, _, dot in cells):
            _, where, _ = next(c for c in cells if c[2])
            raise SNError("misplaced '.': a dotted pair is written (a . b)", where)
        result = tail
        for value, where, _ in reversed(cells):
            result = Cons(value, result, where)
        if result is None:
            return None
        result.loc = self.loc(opener.line, opener.column)
        return result

    def make_matrix(self, node):
        opener, *items, _closer = node.children
        rows = [self.matrix_item(item) for item in items]
        try:
            return np.array(rows, dtype=float)
        except ValueError:
            raise self.error("matrix rows must all have the same length",
                             opener.line, opener.column) from None

    def matrix_item(self, item):
        if isinstance(item, lark.Tree) and item.data == "matrix":
            return self.make_matrix(item).tolist()
        value = self.convert(item)
        if not is_number(value):
            start = item if isinstance(item, lark.Token) else _first_token(item)
            raise self.error(f"a matrix literal holds numbers only, not {start.value!r}",
                             start.line, start.column)
        return value


def _first_token(tree):
    while isinstance(tree, lark.Tree):
        tree = tree.children[0]
    return tree


def _unescape(body):
    if "\\" not in body:
        return body
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
