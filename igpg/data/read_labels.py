"""Read a task's ordered labels back from its instruction: what `igpg generate` does when `--classes` is left out.

    labels_from_instruction("Is it a three or an eight?", "digits")                     # ((3,), (8,))
    labels_from_instruction("Tell even handwritten digits from odd ones", "digits")     # even vs odd
    labels_from_instruction("Sort digits into 2 groups: {1, 3} and 0+2", "digits")     # ((1, 3), (0, 2))

What is read, in order of appearance: the dataset's class names (and English number words where the classes are
the numbers 0, 1, 2, ...), groups written `{1, 3, 5}` or `1+3+5`, the sides of a `vs` / `from` that name several
classes each (`1, 3 and 5 vs 0, 2 and 4`: two groups), and the names of the dataset's named groupings
(templates.yaml: odd / even, less than 5 / 5 or more, footwear / not footwear, ...). Numbers that count or index
(`a 3-way classifier`, `into 3 groups`, `one output per class`, `output 0`) are not classes, nor is the dataset's
description (`MNIST-1D digit signals`). Nothing is guessed: an instruction it cannot read unambiguously (no label or
only one, a class named twice, a number that is no class, a range or a threshold, a negation, names of two
groupings, a grouping's name beside classes it does not hold, ...) raises one `IgpgError` line that says to pass
--classes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from igpg.data.datasets import Dataset, load_dataset
from igpg.data.tasks import Label, load_templates
from igpg.errors import IgpgError

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")
_PLURAL_WORDS = {"zero": "zero(?:e?s)?", "six": "six(?:es)?"}  # default: word + optional "s"
# a number standing alone: not part of a word or a decimal ("8x8", "mnist1d", "0.9"), nor of a name in capitals
# ("CIFAR-10"; "vs-8" is a number)
_NUM = r"(?<![\w.])(?-i:(?<![A-Z]-))\d+(?:'?s)?(?!\w|\.\d)"
# what a number before them counts: "a 3-way classifier", "into 3 groups", "two outputs", "one output per class"
_COUNT_NOUNS = ("ways?|class(?:es)?|groups?|outputs?|labels?|categor(?:y|ies)|kinds?|types?|neurons?|units?|"
                "buckets?|bins?|sets?|options?|choices?|digits?|numbers?|layers?|hidden|samples?|examples?|shots?|"
                "images?|pixels?|features?|points?|epochs?|logits?|heads?|targets?|clusters?|outcomes?|answers?|"
                "values?|classifiers?|networks?|nets?|models?|steps?|times?|percent|%")
_COUNT_ADJECTIVES = "different|distinct|separate|possible|output|hidden|mutually exclusive|ordered"
_SEPARATORS = re.compile(r"\b(?:vs|versus|against|from)\b", re.I)  # "1, 3 and 5 vs 0, 2 and 4": two groups
_NEGATIONS = {"not", "no", "except", "excluding", "exclude", "without", "besides", "nor", "never", "ignore",
              "ignoring", "than", "instead"}  # "than": "other than 3", "rather than 3"
CLASSES_HINT = "pass them with --classes, e.g. --classes 3,5,8 or --classes 1+3+5,0+2+4"


class _Unreadable(IgpgError):
    """Why the labels cannot be read; `labels_from_instruction` turns it into the user's one-line error."""


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    kind: str  # "skip" (description, count, index, pronoun) | "name" | "range" | "number" | "class"
    value: object = None  # class id (number, class), grouping name (name)
    text: str = ""


@dataclass(frozen=True)
class _Grouping:
    labels: tuple[Label, ...]
    names: tuple[str, ...]  # the word(s) naming each label, in output order


@dataclass(frozen=True)
class _Vocabulary:
    numeric: bool  # the class names are "0", "1", ...: bare numbers and number words are classes
    num_classes: int
    patterns: tuple[tuple[re.Pattern, str, object, int], ...]  # (regex, kind, value, tie priority: lower wins)
    groupings: tuple[_Grouping, ...]


def _phrase(name: str, numeric: bool) -> str:
    """A name as a regex: words apart by spaces, hyphens or underscores or none ("T-shirt", "aquarium_fish"), digits
    also as number words ("less than five"), a plural allowed."""
    parts = []
    for word in re.split(r"[\s_-]+", name.strip()):
        if numeric and word.isdigit() and int(word) < len(_NUMBER_WORDS):
            parts.append(f"(?:{word}|{_NUMBER_WORDS[int(word)]})")
        else:
            parts.append(re.escape(word))
    return r"(?<![\w-])" + r"[\s_-]*".join(parts) + r"(?:e?s)?(?![\w-])"


@functools.lru_cache(maxsize=32)
def _vocabulary(name: str, description: str, class_names: tuple[str, ...]) -> _Vocabulary:
    numeric = all(c == str(i) for i, c in enumerate(class_names))
    groupings = []
    for family in load_templates()["named_groupings"].values():
        if name in family["datasets"]:
            groupings += [_Grouping(tuple(tuple(sorted(label)) for label in g["labels"]), tuple(g["names"]))
                          for g in family["groupings"].values()]
    p: list[tuple[str, str, object, int]] = [
        (re.escape(description).replace(r"\ ", r"\s+"), "skip", None, 0),
        (r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", "skip", None, 0),
        (r"\b(?:one[-\s](?:hot|vs?\.?[-\s](?:rest|all|others?))|one\s+(?:versus|against)\s+(?:rest|all))\b",
         "skip", None, 3),
    ]
    for g in groupings:
        p += [(_phrase(n, numeric), "name", n, 1) for n in g.names]
    num_word = "|".join(_NUMBER_WORDS)
    p += [
        # ranges and thresholds name no class: refused, never read as their end points
        (rf"(?<![\w.])\d+\s*(?:-|–|—|\.\.|to|through|thru)\s*\d+(?!\w|\.\d)", "range", None, 2),
        (rf"\b(?:(?:less|fewer|smaller|lower|greater|more|larger|bigger|higher)\s+than|below|above|under|over|"
         rf"at\s+least|at\s+most|up\s+to)\s+(?:\d+|{num_word})\b", "range", None, 2),
        (rf"(?<![\w.])(?:\d+|\b(?:{num_word}))\s+(?:or|and)\s+(?:more|less|fewer|above|below|over|under|up|higher|"
         r"lower|greater|larger|smaller|bigger)\b", "range", None, 2),
        # counts and indices: "a 3-way classifier", "into 3 groups", "one output per class", "output 0"
        (rf"(?<![\w.])(?:\d+|\b(?:{num_word}|a|an|single))(?:\s*-\s*|\s*)(?:(?:{_COUNT_ADJECTIVES})[-\s]+)?"
         rf"(?:{_COUNT_NOUNS})(?!\w)", "skip", None, 3),
        (rf"\b(?:output|neuron|index|position|logit|node|unit|slot|label|head)\s*(?:#|no\.?|number)?\s*"
         rf"(?:\d+|{num_word})\s*(?=[=:]|->|→|(?:is|means|should|gives|says|for)\b)", "skip", None, 3),
        # "one" and "ones" as pronouns: "each one is", "which one", "one of", "from even ones"
        (r"\b(?:each|which|this|that|any|every|no|the|only|single|just|another)\s+one\b", "skip", None, 3),
        (r"\bone\s+(?:of|per|another|by|at\s+a\s+time|or\s+more|or\s+the\s+other)\b", "skip", None, 3),
        (_NUM, "number", None, 4),
    ]
    if numeric:  # number words; those past the last class ("ten" of digits) are refused like "10"
        for i, word in enumerate(_NUMBER_WORDS):
            plural = _PLURAL_WORDS.get(word, word + "s?")
            p.append((rf"\b{plural}\b", "class" if i < len(class_names) else "number", i, 4))
    else:
        for i, c in enumerate(class_names):
            p.append((_phrase(c, False), "class", i, 4))
            if "/" in c:  # "T-shirt/top" is also read as "T-shirt"
                p.append((_phrase(c.split("/")[0], False), "class", i, 4))
    compiled = tuple((re.compile(rx, re.I), kind, value, prio) for rx, kind, value, prio in p)
    return _Vocabulary(numeric, len(class_names), compiled, tuple(groupings))


def _lex(text: str, vocab: _Vocabulary, dropped_names: frozenset[str] = frozenset()) -> list[_Token]:
    """Non-overlapping tokens in text order; where matches overlap, the longest wins (then the lower priority)."""
    found = []
    for rx, kind, value, prio in vocab.patterns:
        if kind == "name" and value in dropped_names:
            continue
        for m in rx.finditer(text):
            if m.end() > m.start():
                found.append((m.start(), m.end(), kind, value, prio))
    # "ones" is the digit 1 only beside other plural digits ("ones vs sevens"); else a pronoun ("even ones")
    plural_digits = vocab.numeric and re.search(r"\b(?:zero(?:e?s)|twos|threes|fours|fives|sixes|sevens|eights|"
                                                r"nines)\b", text, re.I)
    taken = [False] * len(text)
    tokens = []
    for start, end, kind, value, prio in sorted(found, key=lambda f: (f[0] - f[1], f[4], f[0])):
        if any(taken[start:end]):
            continue
        word = text[start:end]
        if kind == "class" and word.lower() == "ones" and not plural_digits:
            kind = "skip"
        if kind == "number" and value is None:
            value = int(re.match(r"\d+", word).group())
        taken[start:end] = [True] * (end - start)
        tokens.append(_Token(start, end, kind, value, word))
    return sorted(tokens, key=lambda t: t.start)


def _check_numbers(tokens: list[_Token], vocab: _Vocabulary, dataset: str) -> list[_Token]:
    """Bare numbers as class tokens; a range, or a number that is no class of the dataset, is refused."""
    out = []
    for t in tokens:
        if t.kind == "range":
            raise _Unreadable(f"{t.text!r} is a range or a threshold, not a list of classes")
        if t.kind == "number":
            if not vocab.numeric:
                raise _Unreadable(f"{t.text!r} is a number but the classes of {dataset} have names")
            if t.value >= vocab.num_classes:
                raise _Unreadable(f"{t.text} is not a class of {dataset} (0..{vocab.num_classes - 1})")
            t = _Token(t.start, t.end, "class", t.value, t.text)
        out.append(t)
    return out


def _check_negations(text: str, tokens: list[_Token]) -> None:
    """A class right after "not", "except", "without", ... is one the user does not want: refused, not read."""
    prev = 0
    for t in tokens:
        if t.kind == "class":
            words = re.findall(r"[a-z]+", text[prev:t.start].lower())[-3:]
            hit = next((w for w in words if w in _NEGATIONS), None)
            if hit:
                raise _Unreadable(f"{t.text!r} follows {hit!r}")
        prev = t.end


def _brace_regions(text: str) -> list[tuple[int, int]]:
    regions, opened = [], None
    for i, ch in enumerate(text):
        if ch == "{":
            if opened is not None:
                raise _Unreadable("braces inside braces")
            opened = i
        elif ch == "}":
            if opened is None:
                raise _Unreadable("a '}' without its '{'")
            regions.append((opened, i))
            opened = None
    if opened is not None:
        raise _Unreadable("a '{' without its '}'")
    return regions


@dataclass
class _Item:
    start: int
    end: int
    classes: list[int]
    braced: bool = False  # a group written {1, 3, 5} or 1+3+5
    region: int | None = None  # its brace region


def _items(text: str, classes: list[_Token]) -> list[_Item]:
    """Class tokens as items: one per class, one per group in braces or joined by '+'."""
    regions = _brace_regions(text)
    items: list[_Item] = []
    for t in classes:
        r = next((i for i, (s, e) in enumerate(regions) if s < t.start < e), None)
        last = items[-1] if items else None
        if r is not None and last is not None and last.region == r:
            last.classes.append(t.value)
        elif r is not None:
            items.append(_Item(t.start, regions[r][1] + 1, [t.value], True, r))
        elif last is not None and last.region is None and re.fullmatch(r"\s*\+\s*", text[last.end:t.start]):
            last.classes.append(t.value)
            last.end, last.braced = t.end, True
        else:
            items.append(_Item(t.start, t.end, [t.value]))
    if len({it.region for it in items if it.region is not None}) < len(regions):
        raise _Unreadable("a group in braces names no class")
    return items


def _explicit_labels(text: str, classes: list[_Token]) -> list[Label]:
    """Labels in order: one per item, or one per side of 'vs' / 'from' when a side names several classes."""
    items = _items(text, classes)
    segments: list[list[_Item]] = [[]]
    connectors: list[list[set[str]]] = [[]]
    for prev, item in zip([None, *items], items):
        if prev is not None:
            gap = text[prev.end:item.start]
            if _SEPARATORS.search(gap):
                segments.append([])
                connectors.append([])
            else:
                connectors[-1].append({w for w in re.findall(r"[a-z]+", gap.lower()) if w in ("and", "or")})
        segments[-1].append(item)
    for conns in connectors:
        if any("and" in c for c in conns) and any("or" in c for c in conns):
            raise _Unreadable("it joins classes with both 'and' and 'or', so the groups are unclear")
    if len(segments) > 1 and any(len(s) > 1 for s in segments):
        if any(len(s) > 1 and any(it.braced for it in s) for s in segments):
            raise _Unreadable("one side of a 'vs' has a group beside other classes")
        return [tuple(sorted(c for it in s for c in it.classes)) for s in segments]
    return [tuple(sorted(it.classes)) for it in items]


def _grouping(names: list[_Token], explicit: list[Label], vocab: _Vocabulary) -> tuple[Label, ...] | None:
    """The named grouping the instruction names (None if it names none); refused when names of two groupings mix,
    when the names come in an order no grouping has, or when classes named beside them do not fit."""
    if not names:
        return None
    found = list(dict.fromkeys(t.value for t in names))  # in order of first appearance
    owners = [g for g in vocab.groupings if set(found) <= set(g.names)]
    if not owners:
        raise _Unreadable(f"it mixes names of different groupings ({', '.join(found)})")
    complete = [g for g in owners if set(g.names) == set(found)]
    if complete:
        grouping = next((g for g in complete if list(g.names) == found), None)
        if grouping is None:
            raise _Unreadable(f"no grouping names {' then '.join(repr(n) for n in found)} in that order")
        named = {c for label in explicit for c in label}
        if not explicit or explicit == list(grouping.labels) or any(named == set(lb) for lb in grouping.labels):
            return grouping.labels  # classes beside the names spell out one of its labels: "prime (2, 3, 5, 7)"
        raise _Unreadable(f"it names {' and '.join(repr(n) for n in found)} beside classes that are not one of them")
    # one name of a grouping alone ("odd digits 1, 3 and 5"): the classes read must all be of that label
    g = owners[0]
    members = set(g.labels[g.names.index(found[0])])
    if not explicit:
        raise _Unreadable(f"it names {found[0]!r} but not the other labels")
    if any(c not in members for label in explicit for c in label):
        raise _Unreadable(f"it names {found[0]!r} beside classes that are not {found[0]}")
    return None


def _dataset(dataset: str | Dataset) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else load_dataset(dataset)


def labels_from_instruction(instruction: str, dataset: str | Dataset, hint: str = CLASSES_HINT) -> tuple[Label, ...]:
    """The ordered labels the instruction names for `dataset` (a registry name or a loaded `Dataset`), as
    `Task(dataset, labels)` takes them; `IgpgError` (one line: why, then `hint`, by default how to pass --classes)
    when they cannot be read unambiguously. Deterministic and offline."""
    ds = _dataset(dataset)
    try:
        return _read(instruction, ds)
    except _Unreadable as e:
        raise IgpgError(f"could not read the labels from the instruction: {e}; {hint}") from None


def _read(instruction: str, ds: Dataset) -> tuple[Label, ...]:
    text = " ".join(str(instruction).split())
    vocab = _vocabulary(ds.name, ds.description, tuple(ds.class_names))
    tokens = _lex(text, vocab)
    # a grouping's name that is also a class ("zero") and whose grouping is not named whole is that class
    names = {t.value for t in tokens if t.kind == "name"}
    class_like = {n for n in names if any(rx.fullmatch(n) for rx, kind, _, _ in vocab.patterns if kind == "class")}
    partial = {n for n in class_like if not any(n in g.names and set(g.names) <= names for g in vocab.groupings)}
    if partial:
        tokens = _lex(text, vocab, frozenset(partial))
    tokens = _check_numbers(tokens, vocab, ds.name)
    _check_negations(text, tokens)
    explicit = _explicit_labels(text, [t for t in tokens if t.kind == "class"])
    grouped = _grouping([t for t in tokens if t.kind == "name"], explicit, vocab)
    labels = grouped if grouped is not None else tuple(explicit)
    if not labels:
        raise _Unreadable(f"it names no class of {ds.name}")
    seen: set[int] = set()
    for label in labels:
        for c in label:
            if c in seen:
                raise _Unreadable(f"{_label_text(ds, (c,))} is named twice")
            seen.add(c)
    if len(labels) < 2:
        raise _Unreadable(f"it names only one label ({_label_text(ds, labels[0])})")
    return labels


def _label_text(ds: Dataset, label: Label) -> str:
    """"3", "{1, 3, 5}"; class names that are not the ids carry them: "Sandal (5)", "{Sandal, Sneaker} (5+7)"."""
    names = [ds.class_names[c] for c in label]
    text = names[0] if len(label) == 1 else "{" + ", ".join(names) + "}"
    return text if names == [str(c) for c in label] else f"{text} ({'+'.join(map(str, label))})"


def describe_labels(labels: tuple[Label, ...], dataset: str | Dataset) -> str:
    """"output 0 = 3, output 1 = {1, 3, 5}": what each output neuron means."""
    ds = _dataset(dataset)
    return ", ".join(f"output {i} = {_label_text(ds, label)}" for i, label in enumerate(labels))
