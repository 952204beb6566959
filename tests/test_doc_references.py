"""What README.md and docs/*.md tell a reader to type or open exists in the code: links and repo paths, the flags of
``spikecl`` commands and of the repo's scripts, config keys (and the values given them), ``make`` targets, and the
experiment files with the ``--set`` overrides the docs run them with.

Extraction rules (precise, so that prose is never read as a reference):

* A doc is split into fenced blocks (```lang ... ```) and prose (everything else); a *span* is a backticked
  stretch of prose, which may run across one line break.
* Links: every ``[text](target)`` in prose whose target has no scheme (``https:``, ``mailto:``): the file, relative
  to the doc, exists, and a ``#anchor`` is the GitHub slug of one of that file's headings.
* Repo paths: a span whose first word starts with ``spikecl/``, ``models/``, ``examples/``, ``benchmarks/``,
  ``tests/``, ``docs/`` or ``hardware/`` (``spikecl_lava/``: below ``hardware/``), and a span that is only a file name
  ending in ``.toml`` (an experiment or sweep file in ``models/``). Words holding a placeholder (``<``, ``{``, ``*``,
  ``…``) are not paths.
* Commands: a span starting with ``spikecl `` or ``python -m spikecl ``, a line of a ``sh``, ``bash`` or unnamed
  block (or a 4-space-indented prose line) starting with ``spikecl ``, ``python -m spikecl `` or holding
  ``-m spikecl.cli ``; backslash continuations are joined, and a line ends at ``#``, ``|``, ``&&``, ``;`` or ``>``.
  Its second word must be a command of :func:`spikecl.cli.build_parser`, each token like ``--flag``, ``--flag=x`` or
  ``-o`` (``[--flag]`` optional) one that command takes, and the value after a flag with choices one of them unless it
  is a placeholder (capitals, or ``a|b``).
* Script flags: a span or shell-block line starting with ``X.py``, ``python X.py`` or ``python -m
  spikecl_lava.runner``, where ``X.py`` names one file of the repository: each ``--flag`` after it is declared
  (``"--flag"``) in that script.
* Config keys: in spans, every dotted name starting ``train.``, ``network.``, ``stream.``, ``data.`` or ``strategy.``
  (not part of a longer dotted name or path, not a file name) is a key of the continual config; ``strategy.<method>.``
  names that method's option. A span that is just ``key = value`` gives a value too where it is a TOML literal (not
  ``data.time_bins``), and so does every ``--set key=value`` of a ``spikecl run`` (a bare word there is a string, as
  ``--set`` reads it): it must pass the key's type and range checks, unless it holds ``<`` or ``...`` or the command
  loads a ``--plugin`` (which may register names). A span ``[strategy.<method>]`` names a method. Keys are checked as
  ``--set`` checks them: :func:`from_dict` of the table holding them.
* TOML blocks: every key of a ```toml block without ``base`` is such a key (a variant's quoted dotted keys too), with
  its value; in a sweep block (``base = ...``), the dotted keys of ``[set]`` and ``[grid]``. A comment after
  ``key = "value"`` that lists values as ``a | b, c | d`` (asides in parentheses and text after ``;`` aside, plain
  words only) names only choices of the key, and all of them where they are fixed.
* ``make X`` in a span, or starting a line of a shell block: ``X`` is a target of the Makefile.
* A command ``spikecl run FILE.toml ...`` naming an experiment file of the repository, without ``--plugin``, ``cuda``
  or a placeholder: the file loads with its ``--set`` overrides, as ``spikecl run`` loads it.
"""

import dataclasses
import functools
import itertools
import re
import shlex
import tomllib
import typing
from pathlib import Path

import pytest

from spikecl.cli import build_parser
from spikecl.config import ExperimentConfig, option_path
from spikecl.continual.strategies import strategy_class
from spikecl.errors import ConfigError
from spikecl.experiment_kind import load
from spikecl.options import field_default, from_dict
from spikecl.toml_files import parse_override
from test_doc_snippets import DOCS, ROOT

PATH_ROOTS = ("spikecl/", "models/", "examples/", "benchmarks/", "tests/", "docs/", "hardware/", "spikecl_lava/")
PLACEHOLDER = re.compile(r"[<{*…]|\.\.\.")
CONFIG_KEY = re.compile(r"(?<![\w./-])((?:train|network|stream|data|strategy)(?:\.\w+)+)(?![\w(/-])")
FILE_SUFFIX = re.compile(r"\.(py|toml|h5|png|log|json|txt|md|sh|gz|zip|pkl)$")
COMMAND = re.compile(r"(?:^|\s)(?:python -m spikecl(?:\.cli)?|-m spikecl\.cli|spikecl)\s+(\S+)(.*)")
COMMAND_START = re.compile(r"\s*(?:\$ )?(?:spikecl |python -m spikecl |.*-m spikecl\.cli )")
SHELL_BLOCKS = ("", "sh", "bash")


@dataclasses.dataclass(frozen=True)
class Doc:
    """One Markdown file: its prose (fenced blocks blanked, lines kept) and its fenced blocks."""

    path: Path
    prose: str
    blocks: tuple[tuple[int, str, str], ...]         # (line of the block's first line, language, text)

    def where(self, line: int) -> str:
        return f"{self.path.relative_to(ROOT)}:{line}"

    def spans(self) -> list[tuple[int, str]]:
        """(line, text) of every backticked span of the prose, a line break inside one read as a space."""
        return [(self.prose.count("\n", 0, m.start()) + 1, m.group(1).replace("\n", " "))
                for m in re.finditer(r"`([^`]+)`", self.prose)]

    def commands(self) -> list[tuple[int, str, list[str]]]:
        """(line, command, its words) of every spikecl command: spans starting ``spikecl``, command lines of shell
        blocks and of indented prose, continuations joined and each cut where the shell command ends."""
        found = [(n, s) for n, s in self.spans() if s.startswith(("spikecl ", "python -m spikecl "))]
        found += [(n, s) for n, s in enumerate(self.prose.splitlines(), 1) if re.match(r" {4}spikecl ", s)]
        for first, lang, text in self.blocks:
            if lang in SHELL_BLOCKS:
                lines = text.replace("\\\n", "  \n").splitlines()     # keeps the count of lines
                found += [(first + i, s) for i, s in enumerate(lines) if COMMAND_START.match(s)]
        cut = [(n, COMMAND.search(re.split(r"\s(?:#|\||&&|;|>|2>)\s", s + " ")[0])) for n, s in found]
        return [(n, m.group(1), words(m.group(2))) for n, m in cut if m]


def read(path: Path) -> Doc:
    text = path.read_text()
    blocks = tuple((text.count("\n", 0, m.start()) + 2, m.group(1), m.group(2))
                   for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M))
    prose = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    return Doc(path, prose, blocks)


READ = [read(path) for path in DOCS]
PARSERS = build_parser().commands
MAKE_TARGETS = set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def scripts_by_name() -> dict[str, list[Path]]:
    """The Python files of the repository's code folders, by file name (a name may be several files')."""
    found: dict[str, list[Path]] = {}
    for path in sorted(p for folder in ("benchmarks", "examples", "hardware", "spikecl") for p in
                       (ROOT / folder).rglob("*.py")):
        found.setdefault(path.name, []).append(path)
    return found


SCRIPTS = scripts_by_name()


def words(text: str) -> list[str]:
    """Shell words of ``text`` (split at spaces where its quotes do not pair), optional ``[--flag]`` unbracketed."""
    text = re.sub(r"\[(--?[^\[\]]*)\]", r"\1", text)
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def heading_slugs(path: Path) -> set[str]:
    """GitHub's anchors of the headings of ``path``: lower case, punctuation but ``-`` and ``_`` dropped, spaces
    as ``-``."""
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.*)$", read(path).prose, re.M)}


def config_problem(key: str, value: typing.Any = dataclasses.MISSING) -> str | None:
    """Why the continual config refuses ``key`` (with ``value`` where given) as ``--set`` would, or None: the table
    holding it is validated by :func:`from_dict` with that one key (``strategy.<method>``: the method's options)."""
    path = option_path(key.split("."))
    try:
        if path[:1] == ["strategy"] and len(path) == 2 and path[1] not in ("methods", "options"):
            strategy_class(path[1])                                     # a method's table: the method exists
            return None
        if path[:2] == ["strategy", "options"]:
            if len(path) < 4:
                return None if len(path) == 2 else config_problem(f"strategy.{path[2]}")
            table, prefix, path = strategy_class(path[2]).Options, f"strategy.{path[2]}.", path[3:]
        else:
            table, prefix = ExperimentConfig, ""
        for part in path[:-1]:
            hints = typing.get_type_hints(table)
            if part not in hints:
                from_dict(table, {part: None}, prefix)                  # says the key is unknown
            if part == "variants":
                return None                                             # a variant's name is the user's
            if not dataclasses.is_dataclass(hints[part]):
                return f"{key}: {prefix}{part} is not a table"
            table, prefix = hints[part], f"{prefix}{part}."
        leaf = path[-1]
        if value is dataclasses.MISSING:
            names = {f.name for f in dataclasses.fields(table)}
            value = field_default(table, leaf) if leaf in names else None
        from_dict(table, {leaf: value}, prefix)
    except ConfigError as exc:
        return str(exc)
    return None


def given_value(text: str, bare_words: bool) -> typing.Any:
    """The value ``text`` gives: a TOML literal (or, with ``bare_words``, a bare word, as ``--set`` reads it); MISSING
    where it is none or holds a placeholder (``<name>``, ``...``)."""
    try:
        value = parse_override(f"v={text}")[1] if bare_words else tomllib.loads(f"v = {text}")["v"]
    except (ConfigError, tomllib.TOMLDecodeError):
        return dataclasses.MISSING
    return dataclasses.MISSING if PLACEHOLDER.search(str(value)) else value


def command_problems(doc: Doc, line: int, command: str, rest: list[str]) -> list[str]:
    """Why ``spikecl COMMAND REST...`` of ``doc`` is not a command line spikecl takes (flags, choices, --set keys)."""
    if command in ("--help", "-h", "--version"):
        return []
    if command not in PARSERS:
        return [f"{doc.where(line)}: spikecl {command}: no such command ({', '.join(PARSERS)})"]
    actions = {flag: action for action in PARSERS[command]._actions for flag in action.option_strings}
    problems, plugin = [], "--plugin" in rest
    for i, token in enumerate(rest):
        if not re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", token):
            continue
        flag, _, value = token.partition("=")
        value = value or (rest[i + 1] if i + 1 < len(rest) else "")
        action = actions.get(flag)
        if action is None:
            problems.append(f"{doc.where(line)}: spikecl {command} {flag}: not a flag of spikecl {command}")
        elif action.choices and value and not value.isupper() and "|" not in value and value not in action.choices:
            problems.append(f"{doc.where(line)}: spikecl {command} {flag} {value}: not one of {list(action.choices)}")
        elif flag == "--set" and command == "run" and CONFIG_KEY.match(value.split("=")[0]) and "=" in value:
            key, given = value.split("=", 1)
            problem = config_problem(key.strip(), dataclasses.MISSING if plugin else given_value(given, True))
            problems += [f"{doc.where(line)}: --set {value}: {problem}"] if problem else []
    return problems


def test_the_extraction_finds_what_the_docs_reference():
    """Each rule finds many references (a changed fence or backtick habit would otherwise leave nothing checked)."""
    spans = [s for doc in READ for _, s in doc.spans()]
    assert sum(len(re.findall(r"\]\(", doc.prose)) for doc in READ) >= 50
    assert sum(1 for s in spans if s.startswith(PATH_ROOTS)) >= 100
    assert sum(len(doc.commands()) for doc in READ) >= 60
    assert sum(len(CONFIG_KEY.findall(s)) for s in spans) >= 80


def test_relative_links_point_at_files_and_headings_that_exist():
    problems = []
    for doc in READ:
        for m in re.finditer(r"\]\(([^)\s]+)\)", doc.prose):
            target, line = m.group(1), doc.prose.count("\n", 0, m.start()) + 1
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (doc.path.parent / file) if file else doc.path
            if not path.exists():
                problems.append(f"{doc.where(line)}: link {target}: no such file")
            elif anchor and anchor not in heading_slugs(path):
                problems.append(f"{doc.where(line)}: link {target}: no heading #{anchor} in {file or doc.path.name}")
    assert not problems, "\n".join(problems)


def test_backticked_repo_paths_and_experiment_files_exist():
    problems = []
    toml_names = {p.name for p in (ROOT / "models").rglob("*.toml")}
    for doc in READ:
        for line, span in doc.spans():
            first = span.split()[1] if span.startswith("python ") and len(span.split()) > 1 else span.split()[0]
            first = first.rstrip(".,;:")
            if PLACEHOLDER.search(first):
                continue
            if first.startswith(PATH_ROOTS):
                path = ROOT / ("hardware/" if first.startswith("spikecl_lava/") else "") / first
                problems += [] if path.exists() else [f"{doc.where(line)}: {first}: not in the repository"]
            elif re.fullmatch(r"[\w-]+\.toml", span) and span not in toml_names:
                problems.append(f"{doc.where(line)}: {span}: no such file in models/")
    assert not problems, "\n".join(problems)


def test_documented_spikecl_commands_use_flags_and_values_their_command_accepts():
    problems = [p for doc in READ for command in doc.commands() for p in command_problems(doc, *command)]
    assert not problems, "\n".join(problems)


def test_flags_given_to_the_repos_scripts_are_options_of_the_script():
    problems = []
    for doc in READ:
        places = [*doc.spans(), *[(first + i, s) for first, lang, text in doc.blocks if lang in SHELL_BLOCKS
                                  for i, s in enumerate(text.replace("\\\n", "  \n").splitlines())]]
        for line, text in places:
            m = re.match(r"(?:\$ )?(?:\S*python\S*\s+)?([\w/]+\.py|-m spikecl_lava\.runner)(\s.*)?$",
                         text.split(" # ")[0].strip())
            if not m:
                continue
            script = m.group(1)
            paths = ([ROOT / "hardware/spikecl_lava/runner.py"] if script.startswith("-m ")
                     else SCRIPTS.get(Path(script).name, []))
            if len(paths) != 1:
                continue
            source = paths[0].read_text()
            for token in words(m.group(2) or ""):
                flag = token.split("=")[0]
                if re.fullmatch(r"--[A-Za-z][\w-]*", flag) and f'"{flag}"' not in source:
                    problems.append(f"{doc.where(line)}: {script} {flag}: not an option of {paths[0].name}")
    assert not problems, "\n".join(problems)


def test_backticked_config_keys_are_keys_the_config_accepts():
    problems = []
    for doc in READ:
        for line, span in doc.spans():
            if span.startswith(("spikecl ", "python ")):
                continue                                    # a command: its --set keys are checked with it
            whole = re.fullmatch(CONFIG_KEY.pattern + r"\s*=\s*(.+)", span)
            if whole:
                problem = config_problem(whole.group(1), given_value(whole.group(2), False))
                problems += [f"{doc.where(line)}: {problem}"] if problem else []
                continue
            table = re.fullmatch(r"\[strategy\.(\w+)\]", span)
            if table:
                problem = config_problem(f"strategy.{table.group(1)}")
                problems += [f"{doc.where(line)}: {problem}"] if problem else []
                continue
            for key in CONFIG_KEY.findall(span):
                if not FILE_SUFFIX.search(key) and (problem := config_problem(key)):
                    problems.append(f"{doc.where(line)}: {problem}")
    assert not problems, "\n".join(problems)


def toml_block_keys(raw: dict) -> list[tuple[str, typing.Any]]:
    """(dotted key, value) of every config setting a TOML block of a doc makes: an experiment's keys (a variant's
    quoted dotted keys included), or a sweep's ``[set]`` and ``[grid]`` keys (a grid's value is a list of values)."""
    if "base" in raw:
        return [(k, v) for k, v in raw.get("set", {}).items()] + [(k, dataclasses.MISSING)
                                                                  for k in raw.get("grid", {})]
    found = []

    def walk(node, prefix):
        for key, value in node.items():
            if prefix.startswith("variants.") and prefix.count(".") == 2:
                found.extend([(key, value)] if key != "method" else [])
            elif isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                found.append((f"{prefix}{key}", value))
    walk(raw, "")
    return found


def test_toml_blocks_hold_keys_and_values_the_config_accepts():
    problems, blocks = [], 0
    for doc in READ:
        for line, lang, text in doc.blocks:
            if lang != "toml":
                continue
            blocks += 1
            for key, value in toml_block_keys(tomllib.loads(text)):
                problem = config_problem(key, value)
                problems += [f"{doc.where(line)}: {problem}"] if problem else []
    assert blocks >= 5 and not problems, "\n".join(problems)


def listed_values(text: str) -> list[tuple[int, str, list[str]]]:
    """(line in ``text``, dotted key, names) of every ``key = "value"  # a | b, c | d (why)`` of a TOML block: a
    comment (with the comment-only lines under it) whose ``|``-separated alternatives, parenthesised asides removed and
    each cut at ``;``, are comma-separated plain words; any other comment lists nothing."""
    found, table, lines = [], "", text.splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r"\[([\w.-]+)\]", line)
        table = heading.group(1) + "." if heading else table
        m = re.match(r'(\w+)\s*=\s*"[^"]*"\s*#(.*)', line)
        if not m or heading:
            continue
        under = itertools.takewhile(bool, (re.fullmatch(r"\s+#(.*)", n) for n in lines[i + 1:]))
        said = " ".join([m.group(2), *(c.group(1) for c in under)])
        while re.search(r"\([^()]*\)", said):
            said = re.sub(r"\([^()]*\)", "", said)
        names = [[w.strip() for w in alternative.split(";")[0].split(",")] for alternative in said.split("|")]
        if len(names) > 1 and all(re.fullmatch(r"[a-z_0-9]+", w) for alternative in names for w in alternative):
            found.append((i, table + m.group(1), [w for alternative in names for w in alternative]))
    return found


def test_a_toml_comment_listing_a_keys_values_names_its_choices_all():
    """``encoder = "direct"  # direct | poisson | latency`` under ``[network]`` names choices of network.encoder, and
    every one of them where the choices are fixed (a registry's grow with plugins)."""
    problems, lists = [], 0
    for doc in READ:
        for line, lang, text in doc.blocks:
            if lang != "toml" or "base" in tomllib.loads(text):
                continue
            for i, key, names in listed_values(text):
                lists += 1
                *tables, leaf = key.split(".")
                table = functools.reduce(lambda cls, part: typing.get_type_hints(cls)[part], tables, ExperimentConfig)
                choices = next(f for f in dataclasses.fields(table) if f.name == leaf).metadata["choices"]
                fixed = not callable(choices)
                choices = choices() if callable(choices) else choices
                wrong = [w for w in names if w not in choices]
                missing = [c for c in choices if c not in names] if fixed else []
                problems += [f"{doc.where(line + i)}: {key}: the comment lists {names}, not its choices"
                             f"{'; not a choice: ' + ', '.join(wrong) if wrong else ''}"
                             f"{'; left out: ' + ', '.join(missing) if missing else ''}"] if wrong or missing else []
    assert lists >= 5 and not problems, "\n".join(problems)


def test_make_targets_named_in_the_docs_exist():
    problems = []
    for doc in READ:
        texts = [*doc.spans(), *[(first + i, s) for first, lang, text in doc.blocks if lang in SHELL_BLOCKS
                                 for i, s in enumerate(text.splitlines()) if s.lstrip().startswith("make ")]]
        for line, text in texts:
            problems += [f"{doc.where(line)}: make {target}: no such target in the Makefile"
                         for target in re.findall(r"(?:^|\s)make ([\w-]+)", text) if target not in MAKE_TARGETS]
    assert not problems, "\n".join(problems)


#: (where, arguments) of every documented ``spikecl run`` of an experiment file of the repository, but those loading a
#: plugin, asking for CUDA (which this machine may lack) or holding a placeholder
RUNS = [(doc.where(line), args) for doc in READ for line, command, args in doc.commands()
        if command == "run" and args and args[0].endswith(".toml") and (ROOT / args[0]).is_file()
        and "--plugin" not in args and "cuda" not in args and not any(PLACEHOLDER.search(a) for a in args)]


@pytest.mark.parametrize("where, args", RUNS, ids=[where for where, _ in RUNS])
def test_a_documented_run_loads_its_experiment_with_its_overrides(where, args):
    """``spikecl run FILE --set ...`` as a doc gives it loads as the command loads it (keys, values, and a --set
    that some run reads)."""
    parsed, _ = build_parser().parse_known_args(["run", *args])
    load(ROOT / args[0], parsed.overrides)
