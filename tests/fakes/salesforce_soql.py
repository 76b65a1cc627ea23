"""The small subset of SOQL the Salesforce connector emits, parsed and evaluated for the fake Salesforce.

Grammar: `SELECT field, Rel.Field, (SELECT f FROM ChildRelationship [ORDER BY …]) FROM Object
[WHERE cond AND cond …] [ORDER BY f [ASC|DESC], …] [LIMIT n]`, where a condition is `Field op literal`
(op: = != > >= < <=; literal: 'text', true/false/null, a number or an unquoted datetime like
2026-05-01T07:20:37Z) or `Id IN (SELECT RefField FROM Object WHERE …)`. Anything else is a MALFORMED_QUERY,
as Salesforce would answer; it never guesses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Condition:
    field: str
    op: str
    value: Any = None
    subquery: "Query | None" = None


@dataclass
class Query:
    sobject: str
    fields: list[str]
    children: list["Query"] = field(default_factory=list)
    where: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    limit: int | None = None


_TOKEN = re.compile(r"\s*(\(|\)|,|>=|<=|!=|=|>|<|'(?:[^'\\]|\\.)*'|[A-Za-z0-9_.:+\-]+)")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token at: {text[pos:pos + 20]!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self, upper: bool = True) -> str | None:
        if self.i >= len(self.t):
            return None
        return self.t[self.i].upper() if upper else self.t[self.i]

    def take(self, expected: str | None = None) -> str:
        if self.i >= len(self.t):
            raise SoqlError("MALFORMED_QUERY", f"unexpected end of query (expected {expected or 'more'})")
        token = self.t[self.i]
        if expected is not None and token.upper() != expected:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{token}' (expected {expected})")
        self.i += 1
        return token

    def query(self) -> Query:
        self.take("SELECT")
        fields: list[str] = []
        children: list[Query] = []
        while True:
            if self.peek() == "(":
                self.take("(")
                children.append(self.query())
                self.take(")")
            else:
                fields.append(self.take())
            if self.peek() == ",":
                self.take(",")
                continue
            break
        self.take("FROM")
        q = Query(self.take(), fields, children)
        if self.peek() == "WHERE":
            self.take("WHERE")
            q.where.append(self.condition())
            while self.peek() == "AND":
                self.take("AND")
                q.where.append(self.condition())
            if self.peek() == "OR":
                raise SoqlError("MALFORMED_QUERY", "OR is not supported by this fake")
        if self.peek() == "ORDER":
            self.take("ORDER")
            self.take("BY")
            while True:
                name = self.take()
                desc = False
                if self.peek() in ("ASC", "DESC"):
                    desc = self.take().upper() == "DESC"
                q.order.append((name, desc))
                if self.peek() != ",":
                    break
                self.take(",")
        if self.peek() == "LIMIT":
            self.take("LIMIT")
            q.limit = int(self.take())
        return q

    def condition(self) -> Condition:
        name = self.take()
        op = self.take()
        if op.upper() == "IN":
            self.take("(")
            sub = self.query()
            self.take(")")
            return Condition(name, "IN", subquery=sub)
        if op not in ("=", "!=", ">", ">=", "<", "<="):
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{op}'")
        return Condition(name, op, _literal(self.take()))


def _literal(token: str) -> Any:
    if token.startswith("'"):
        return token[1:-1].replace("\\'", "'")
    low = token.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T.*", token):
        return parse_datetime(token)
    try:
        return float(token)
    except ValueError:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{token}'") from None


def parse(text: str) -> Query:
    parser = _Parser(_tokens(text))
    q = parser.query()
    if parser.peek() is not None:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{parser.peek(False)}'")
    return q


def parse_datetime(value: str) -> datetime:
    """2026-05-01T07:25:37.000+0000, …Z or …+00:00 → an aware datetime."""
    text = value.replace("Z", "+00:00")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    return datetime.fromisoformat(text)


def comparable(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}.*", value):
        return parse_datetime(value)
    return value


def matches(record: dict[str, Any], cond: Condition, resolve_in) -> bool:
    if cond.op == "IN":
        return record.get(cond.field) in resolve_in(cond.subquery)
    left, right = comparable(record.get(cond.field)), cond.value
    if cond.op == "=":
        return left == right
    if cond.op == "!=":
        return left != right
    if left is None or right is None:
        return False
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[cond.op]


def sort_key(order: list[tuple[str, bool]]):
    """A sort key for ORDER BY with mixed directions (nulls first ascending, like Salesforce)."""
    def key(record: dict[str, Any]):
        parts = []
        for name, desc in order:
            value = comparable(record.get(name))
            rank = (value is not None, value)
            parts.append(_Desc(rank) if desc else rank)
        return parts
    return key


class _Desc:
    def __init__(self, value) -> None:
        self.value = value

    def __lt__(self, other: "_Desc") -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and other.value == self.value
