"""Search in the recognised text of photos: parse ``text:`` terms and ``-word`` negatives out of
a query, find and rank matching files (exact phrase > all words > fuzzy), and fuse the text
ranking with the embedding ranking.

Matching is on folded text (``fold``: case and accents ignored). A term matches a document
as a whole token, as a prefix or substring of a token ("RE16" in "RE16 TGK", lower tiers),
or — for words of six letters or more, as OCR misreads one character — as a token at edit
distance one ("INV0ICE" for "invoice").
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from indexer.store.text_index import TextIndex, fold, halves

EXACT, PREFIX, SUBSTRING, FUZZY = 1.0, 0.8, 0.6, 0.4  # how well one term matched
STOPWORDS = frozenset({"the", "and", "for", "with", "from", "photo", "photos", "picture", "image"})
PLAIN_SUBSTRING = 5  # plain (not ``text:``) words match inside a token from this length
_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass
class TextQuery:
    """A query split into its text parts. ``required``: ``text:`` phrases (each a list of
    folded words), all of which must match; ``words``: plain words, matched for the hybrid
    ranking; ``negatives``: folded words whose photos are excluded; ``rest``: the query
    without ``text:`` terms and negatives (what the embedding is asked)."""

    required: list[list[str]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)
    rest: str = ""

    @property
    def restricts(self) -> bool:
        return bool(self.required)


def parse(query: str) -> TextQuery:
    """``'text:"INVOICE 58213" beach -draft'`` -> required [["invoice", "58213"]], words
    ["beach"], negatives ["draft"], rest "beach"."""
    try:
        parts = shlex.split(query, posix=True)
    except ValueError:  # an unbalanced quote: read it as words
        parts = query.replace('"', "").split()
    out, rest = TextQuery(), []
    for part in parts:
        if part.lower().startswith("text:"):
            words = tokens(part[5:])
            if words:
                out.required.append(words)
        elif part.startswith("-") and len(part) > 1:
            out.negatives.extend(tokens(part[1:]))
        else:
            rest.append(part)
            out.words.extend(w for w in tokens(part) if len(w) >= 3 and w not in STOPWORDS)
    out.rest = " ".join(rest)
    return out


def tokens(value: str) -> list[str]:
    return _TOKEN.findall(fold(value))


def within_one(a: str, b: str) -> bool:
    """Edit distance (substitution, insertion, deletion) of at most one."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


def term_quality(term: str, doc_tokens: list[str], doc: str, substrings: int = 1) -> float:
    """How well ``term`` occurs in a document (0: not at all); inside a token only when it
    has at least ``substrings`` characters."""
    if term in doc_tokens:
        return EXACT
    if any(t.startswith(term) for t in doc_tokens):
        return PREFIX
    if len(term) >= substrings and term in doc:
        return SUBSTRING
    if len(term) >= 6 and any(within_one(term, t) for t in doc_tokens if len(t) >= 5):
        return FUZZY
    return 0.0


def score(doc: str, phrases: list[list[str]], substrings: int = 1) -> float:
    """Match quality of a folded document: 0 unless every term matches; then a tier — 3 for
    every phrase found verbatim, 2 for all words found whole or as prefixes/substrings, 1 if
    any needed fuzziness — plus the mean term quality (0..1) within the tier."""
    doc_tokens = _TOKEN.findall(doc)
    qualities = []
    for phrase in phrases:
        qualities.extend(term_quality(t, doc_tokens, doc, substrings) for t in phrase)
    if not qualities or min(qualities) == 0:
        return 0.0
    if all(_phrase_in(p, doc_tokens) for p in phrases):
        tier = 3
    else:
        tier = 1 if min(qualities) <= FUZZY else 2
    return tier + sum(qualities) / len(qualities)


def _phrase_in(phrase: list[str], doc_tokens: list[str]) -> bool:
    n = len(phrase)
    return any(doc_tokens[i : i + n] == phrase for i in range(len(doc_tokens) - n + 1))


def matches(
    index: TextIndex,
    phrases: list[list[str]],
    negatives: list[str] = (),
    substrings: int = 1,
    limit: int = 1000,
) -> list[tuple[int, float]]:
    """Files whose text matches every term of ``phrases``, best first, as (file id, score);
    files whose text has one of ``negatives`` as a token are left out."""  # fmt: skip
    terms = [t for p in phrases for t in p]
    if not terms:
        return []
    groups = [halves(t) if len(t) >= 6 else [t] for t in sorted(set(terms))]
    docs = index.candidates(groups)
    banned = set(negatives)
    ranked = []
    for file_id, doc in docs.items():
        if banned and banned & set(_TOKEN.findall(doc)):
            continue
        value = score(doc, phrases, substrings)
        if value > 0:
            ranked.append((file_id, value))
    ranked.sort(key=lambda item: (-item[1], item[0]))
    return ranked[:limit]


def excluded(index: TextIndex, negatives: list[str]) -> set[int]:
    """Files whose text has one of ``negatives`` as a whole token (for ``-word``)."""
    out: set[int] = set()
    for word in negatives:
        docs = index.candidates([[word]])
        out |= {f for f, doc in docs.items() if word in _TOKEN.findall(doc)}
    return out


def search(index: TextIndex, query: TextQuery, limit: int = 1000) -> list[tuple[int, float]]:
    """The text side of a query: ``text:`` phrases if any (substrings allowed), else the
    plain words (whole tokens, prefixes, one-typo words, and substrings of five characters or
    more: a plain "star" should not match "restart", but "night" should match the
    "JAZZNIGHT2012" PP-OCRv4 reads when it drops spaces). Negatives excluded either way."""
    if query.restricts:
        return matches(index, query.required, query.negatives, substrings=1, limit=limit)
    if not query.words:
        return []
    return matches(index, [query.words], query.negatives, substrings=PLAIN_SUBSTRING, limit=limit)


def fuse(
    embedding: list[int], text: list[tuple[int, float]], k: float = 60.0, strong: float = 2.0
) -> list[tuple[int, float]]:
    """One ranking from the embedding ranking (ids, best first) and text matches (id, score
    from ``score``, best first): reciprocal-rank fusion, except that text matches of tier
    ``strong`` or better (all words found) rank above everything else, ordered among
    themselves by text score then fused rank. A photo whose text has the query's words is
    what the user asked for; plain RRF would let ~k embedding neighbours outrank it."""  # fmt: skip
    fused: dict[int, float] = {}
    for rank, file_id in enumerate(embedding):
        fused[file_id] = fused.get(file_id, 0.0) + 1.0 / (k + rank + 1)
    for rank, (file_id, _) in enumerate(text):
        fused[file_id] = fused.get(file_id, 0.0) + 1.0 / (k + rank + 1)
    tier = {file_id: int(value) for file_id, value in text if value >= strong}
    order = sorted(fused, key=lambda f: (-tier.get(f, 0), -fused[f], f))
    return [(f, tier.get(f, 0) + fused[f]) for f in order]


def rrf(embedding: list[int], text: list[tuple[int, float]], k: float = 60.0):
    """Plain reciprocal-rank fusion (the baseline ``fuse`` was measured against)."""
    return fuse(embedding, text, k=k, strong=float("inf"))


def highlights(
    lines: list[str], phrases: list[list[str]]
) -> list[tuple[int, list[tuple[int, int]]]]:
    """Which lines matched and where: (line index, [(start, end) character spans in the
    line's own text]) for the terms found in it verbatim after folding (for ``--json`` and
    the UI's matching line)."""
    terms = sorted({t for p in phrases for t in p}, key=len, reverse=True)
    out = []
    for n, line in enumerate(lines):
        folded, origin = "", []
        for i, char in enumerate(line):  # fold per character, remembering where each came from
            piece = fold(char)
            folded += piece
            origin.extend([i] * len(piece))
        spans = []
        for term in terms:
            start = folded.find(term)
            while start >= 0:
                spans.append((origin[start], origin[start + len(term) - 1] + 1))
                start = folded.find(term, start + len(term))
        if spans:
            out.append((n, sorted(set(spans))))
    return out
