"""Write the man pages and the bash, zsh and fish completions of ``bacon`` from its argparse parser.

``packaging/deb/bundle`` (the .deb build's install step) runs this with the bundled code on
``--python-path``, so the pages describe exactly what ships: ``bacon(1)``, and one page per verb
(``bacon-verify(1)``, ``bacon-policy(1)`` with a section per action, …) for whatever
:func:`shim.operator.cli.build_parser` has, new verbs included; and
``/usr/share/bash-completion/completions/bacon``, a static table of verbs, actions, options and option
values (and the values of a positional argument with choices: ``policy set`` High, Mid, Low), and the
same table for zsh (``/usr/share/zsh/vendor-completions/_bacon``) and fish
(``/usr/share/fish/vendor_completions.d/bacon.fish``).

Hand-written (about 250 lines) rather than taken from a library, after trying the candidates:
argparse-manpage (PyPI) renders ``bacon``'s examples (RawDescription epilogs) as filled prose, leaves the
NAME line without a description (lintian's bad-whatis-entry) and writes one page for the whole tree, not
one per verb with cross references; shtab and argcomplete generate completion only, and argcomplete runs
Python on every <Tab>. The parser is one walk over ``argparse``'s actions for both outputs, and the build
needs nothing from the network for it.

usage: gen_docs.py --python-path DIR --man-dir DIR --completion FILE [--zsh-completion FILE]
                   [--fish-completion FILE] [--date YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MANUAL = "BACON Manual"
FILES = [
    ("/etc/bacon/config.toml", "the configuration (see the comments in it); owned by root, writable by nobody else"),
    ("/etc/bacon/keys/", "trusted public keys and the signing key, as named in the configuration"),
    ("/var/lib/bacon/", "state: PCR baseline, TDX collateral, container records (root only)"),
    ("/var/log/bacon/audit.jsonl", "the audit log: one JSON object per decision"),
    ("/usr/lib/bacon/bin/nerdctl", "the nerdctl wrapper, put in front of the real nerdctl by bacon enable"),
    ("/run/bacon/decide.sock", "the warm decision service's socket ([service] socket), served by bacon serve"),
    ("/lib/systemd/system/bacon.service", "the systemd unit that runs bacon serve"),
]
# What the Debian package adds to a verb's page: how it runs that verb for the operator.
PACKAGE_NOTES = {
    "serve": ("The Debian package runs \\fBbacon serve\\fR as the systemd unit \\fBbacon.service\\fR, "
              "at the socket its configuration names (\\fI/run/bacon/decide.sock\\fR, in a directory "
              "systemd makes for it, owned by root, mode 0700): enabled and started when the package is "
              "installed, stopped before an upgrade replaces the code and started again after it, stopped "
              "when the package is removed. \\fBsystemctl status bacon\\fR and \\fBjournalctl \\-u bacon\\fR "
              "show it; \\fBsystemctl disable \\-\\-now bacon\\fR turns it off, and the wrapper then "
              "decides in its own process (slower, the same decision). Run by hand, \\fBbacon serve\\fR "
              "refuses a socket directory that is not root's or that others may write."),
}


@dataclass
class Node:
    """One command of the tree: ``bacon``, ``bacon policy``, ``bacon policy set`` …"""

    path: list[str]
    parser: argparse.ArgumentParser
    help: str = ""
    children: list[Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(self.path)


def walk(parser: argparse.ArgumentParser, path: list[str], help_: str = "") -> Node:
    node = Node(path, parser, help_)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                node.children.append(walk(sub, [*path, name], helps.get(name, "")))
    return node


def options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            yield action


def positionals(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            yield action


def takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


# --- troff ---------------------------------------------------------------------------------------------

def esc(text: str) -> str:
    """Escape running text for troff: backslashes, a leading control character on any line, and anything
    outside ASCII as a Unicode escape (``…`` is ``\\[u2026]``), so the page needs no input encoding."""
    text = text.replace("\\", "\\e")
    text = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def esc_opt(text: str) -> str:
    """An option or command name: every hyphen is a minus sign (so it can be copied and searched)."""
    return esc(text).replace("-", "\\-")


def preformatted(text: str) -> list[str]:
    lines = [esc(line.rstrip()) for line in text.strip("\n").split("\n")]
    return [".RS 4", ".nf", *lines, ".fi", ".RE"]


def split_epilog(epilog: str | None) -> list[tuple[str, str, bool]]:
    """``examples:\\n  …`` and ``exit status: …`` paragraphs → (SECTION, body, preformatted)."""
    out: list[tuple[str, str, bool]] = []
    for para in re.split(r"\n\s*\n", (epilog or "").strip()):
        if not para.strip():
            continue
        m = re.match(r"([a-z][a-z ]*):[ \t]*(.*)", para, re.DOTALL)
        if not m:
            out.append(("NOTES", para, False))
            continue
        first, _, rest = m.group(2).partition("\n")
        if first.strip():
            out.append((m.group(1).upper(), " ".join(m.group(2).split()), False))
        else:
            out.append((m.group(1).upper(), rest, True))
    return out


def usage(node: Node) -> str:
    text = node.parser.format_usage().removeprefix("usage: ")
    return " ".join(text.split())


def synopsis(node: Node) -> list[str]:
    words = usage(node).split(" ")
    prog = len(node.path)
    return ['.SY "' + esc_opt(" ".join(words[:prog])) + '"', esc(" ".join(words[prog:])), ".YS"]


def option_items(node: Node) -> list[str]:
    lines: list[str] = []
    for action in positionals(node.parser):
        lines += [".TP", "\\fI" + esc(action.metavar if isinstance(action.metavar, str) else action.dest) + "\\fR",
                  esc(action.help or "")]
    for action in options(node.parser):
        flags = ", ".join("\\fB" + esc_opt(s) + "\\fR" for s in action.option_strings)
        if takes_value(action):
            metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            if action.choices:
                metavar = "|".join(str(c) for c in action.choices)
            flags += " \\fI" + esc(metavar) + "\\fR"
        help_ = "print the version and exit" if isinstance(action, argparse._VersionAction) else action.help or ""
        lines += [".TP", flags, esc(help_)]
    return lines


def command_page_body(node: Node, level: str) -> list[str]:
    """Synopsis, description, options, examples of one command; its actions as subsections."""
    lines: list[str] = []
    if level == "SS":
        lines += [".SS " + esc_opt(node.name), *synopsis(node)]
    if node.parser.description:
        lines += [".PP", esc(node.parser.description)]
    items = option_items(node)
    if items:
        if level == "SH":
            lines.append(".SH OPTIONS")
        else:
            lines += [".PP", "Options:"]
        lines += [".RS 4", *items, ".RE"] if level == "SS" else items
    for title, body, pre in split_epilog(node.parser.epilog):
        if level == "SH":
            lines.append(".SH " + esc(title))
        else:
            lines += [".PP", esc(title.capitalize()) + ":"]
        lines += preformatted(body) if pre else [".PP", esc(body)]
    for child in node.children:
        lines += command_page_body(child, "SS")
    return lines


def header(page: str, date: str, version: str) -> list[str]:
    return ['.\\" Generated by packaging/deb/gen_docs.py from shim.operator.cli.build_parser(); do not edit.',
            f'.TH {esc_opt(page.upper())} 1 "{date}" "bacon {esc(version)}" "{MANUAL}"']


def main_page(root: Node, date: str, version: str) -> str:
    lines = header("bacon", date, version)
    lines += [".SH NAME", "bacon \\- " + esc(root.parser.description or "BACON"), ".SH SYNOPSIS", *synopsis(root)]
    lines += [".SH DESCRIPTION", ".PP",
              "Operators keep typing \\fBnerdctl\\fR; on a BACON host the \\fBnerdctl\\fR first on PATH is "
              "BACON's wrapper (see \\fBbacon\\-nerdctl\\fR(1)), which admits a container only when its image "
              "carries a trusted signature, its policy label is at most the system level, and the host's "
              "attestation (TPM, TDX) meets what that level requires. \\fBbacon\\fR is the operator's command: "
              "it shows the host's state, changes the system level, records the PCR baseline, produces "
              "sample quotes and explains any decision.",
              ".SH COMMANDS"]
    for child in root.children:
        lines += [".TP", "\\fB" + esc_opt(child.name) + "\\fR",
                  esc(child.help) + " (\\%\\fB" + esc_opt("bacon-" + child.path[-1]) + "\\fR(1))"]
    lines.append(".SH OPTIONS")
    lines += option_items(root)
    for title, body, pre in split_epilog(root.parser.epilog):
        lines.append(".SH " + esc(title))
        lines += preformatted(body) if pre else [".PP", esc(body)]
    lines += common_tail(root, None)
    return "\n".join(lines) + "\n"


def common_tail(root: Node, this: Node | None) -> list[str]:
    lines = [".SH ENVIRONMENT", ".TP", "\\fBBACON_CONFIG\\fR",
             "another configuration file; honoured only outside sudo (and set-uid)."]
    lines.append(".SH FILES")
    for path, what in FILES:
        lines += [".TP", "\\fI" + esc(path) + "\\fR", esc(what)]
    refs = ["bacon"] + ["bacon-" + c.path[-1] for c in root.children] + ["bacon-nerdctl"]
    refs = [r for r in refs if this is None or r != "bacon-" + this.path[-1]]
    if this is None:
        refs.remove("bacon")
    lines += [".SH SEE ALSO", ",\n".join("\\%\\fB" + esc_opt(r) + "\\fR(1)" for r in refs)]
    return lines


def verb_page(root: Node, node: Node, date: str, version: str) -> str:
    page = "bacon-" + node.path[-1]
    lines = header(page, date, version)
    lines += [".SH NAME", esc_opt(page) + " \\- " + esc(node.help), ".SH SYNOPSIS", *synopsis(node)]
    for child in node.children:
        lines += synopsis(child)
    lines.append(".SH DESCRIPTION")
    lines += command_page_body(node, "SH")
    if node.path[-1] in PACKAGE_NOTES:
        lines += [".SH DEBIAN PACKAGE", ".PP", PACKAGE_NOTES[node.path[-1]]]
    exit_status = [body for title, body, _ in split_epilog(root.parser.epilog) if title == "EXIT STATUS"]
    if exit_status and not any(t == "EXIT STATUS" for t, _, _ in split_epilog(node.parser.epilog)):
        lines += [".SH EXIT STATUS", ".PP", esc(exit_status[0])]
    lines += common_tail(root, node)
    return "\n".join(lines) + "\n"


# --- bash completion -----------------------------------------------------------------------------------

def shell_words(words: list[str]) -> str:
    for w in words:
        if not re.fullmatch(r"[A-Za-z0-9_.,:/=+@%-]+", w):
            raise ValueError(f"cannot put {w!r} in the completion script")
    return " ".join(words)


def positional_values(node: Node) -> list[str]:
    """The values a positional argument of ``node`` may take (``policy set``: High, Mid, Low)."""
    return [str(c) for a in positionals(node.parser) if a.choices and not isinstance(
        a, argparse._SubParsersAction) for c in a.choices]


def value_kind(action: argparse.Action) -> str | None:
    """How an option's value is completed: ``choices``, ``file``, ``dir`` or None (free text)."""
    if action.choices:
        return "choices"
    if action.metavar in ("FILE", "SOCKET", "PATH"):
        return "file"
    if action.metavar == "DIR":
        return "dir"
    return None


def nodes(root: Node) -> Iterator[Node]:
    yield root
    for child in root.children:
        yield from nodes(child)


def zsh_completion(root: Node) -> str:
    """The same table for zsh (``_bacon`` in a vendor-completions directory), offered with descriptions."""
    cases, value_cases = [], []
    for node in nodes(root):
        key = " ".join(node.path[1:])
        subs = [c.path[-1] for c in node.children]
        described = [f"{c.path[-1]}:{c.help}".replace("'", "") for c in node.children]
        opts = ["--help"] + [o for a in options(node.parser) for o in a.option_strings]
        valued = [o for a in options(node.parser) if takes_value(a) for o in a.option_strings]
        quoted = " ".join(repr(d) for d in described)  # single-quoted: the helps carry no quote
        cases.append(f"        '{key}') subs=({shell_words(subs)}); described=({quoted}); "
                     f"opts=({shell_words(opts)}); valued=({shell_words(valued)}); "
                     f"vals=({shell_words(positional_values(node))}) ;;")
        for action in options(node.parser):
            kind = value_kind(action) if takes_value(action) else None
            for flag in action.option_strings if kind else ():
                if kind == "choices":
                    what = f"compadd -- {shell_words([str(c) for c in action.choices or ()])}"
                else:
                    what = "_files" if kind == "file" else "_files -/"
                value_cases.append(f"        '{key}|{flag}') {what} ;;")
    return f"""#compdef bacon
# zsh completion for bacon(1). Generated by packaging/deb/gen_docs.py from shim.operator.cli.build_parser().
_bacon_table() {{
    subs=(); described=(); opts=(); valued=(); vals=()
    case "$1" in
{chr(10).join(cases)}
    esac
}}
_bacon() {{
    local cmdpath="" w i skip=0
    local -a subs described opts valued vals
    # The verb path typed so far: words that name a sub-command, options and their values skipped.
    for ((i = 2; i < CURRENT; i++)); do
        w=${{words[i]}}
        if ((skip)); then skip=0; continue; fi
        _bacon_table "$cmdpath"
        case "$w" in
            -*=*) ;;
            -*) (( ${{valued[(Ie)$w]}} )) && skip=1 ;;
            *) (( ${{subs[(Ie)$w]}} )) && cmdpath=${{cmdpath:+$cmdpath }}$w ;;
        esac
    done
    _bacon_table "$cmdpath"
    if ((skip)); then
        case "$cmdpath|${{words[CURRENT-1]}}" in
{chr(10).join(value_cases)}
        esac
        return 0
    fi
    if [[ $PREFIX == -* ]]; then
        compadd -- $opts
    else
        (( $#described )) && _describe -t commands 'bacon command' described
        (( $#vals )) && compadd -- $vals
    fi
    return 0
}}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _bacon "$@"
else
    compdef _bacon bacon
fi
"""


def fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish_completion(root: Node) -> str:
    """The same table for fish (``bacon.fish`` in vendor_completions.d): ``__bacon_path`` is the verb path
    typed so far; every line is offered only at its path."""
    subs_cases, valued_cases, lines = [], [], []
    for node in nodes(root):
        key = " ".join(node.path[1:])
        cond = f"-n {fish_quote(f'test (__bacon_path) = {fish_quote(key)}')}"
        subs = [c.path[-1] for c in node.children]
        valued = [o for a in options(node.parser) if takes_value(a) for o in a.option_strings]
        empty = "''"
        subs_cases.append(f"        case {fish_quote(key)}\n            echo {shell_words(subs) or empty}")
        valued_cases.append(f"        case {fish_quote(key)}\n            echo {shell_words(valued) or empty}")
        for c in node.children:
            lines.append(f"complete -c bacon {cond} -a {c.path[-1]} -d {fish_quote(c.help)}")
        for value in positional_values(node):
            lines.append(f"complete -c bacon {cond} -a {value}")
        for a in options(node.parser):
            longs = [o[2:] for o in a.option_strings if o.startswith("--")]
            shorts = [o[1:] for o in a.option_strings if not o.startswith("--")]
            spec = " ".join([f"-l {x}" for x in longs] + [f"-s {x}" for x in shorts])
            kind = value_kind(a) if takes_value(a) else None
            value = ""
            if kind == "choices":
                value = f" -x -a {fish_quote(shell_words([str(c) for c in a.choices or ()]))}"
            elif kind in ("file", "dir"):
                value = " -r -F"
            elif takes_value(a):
                value = " -x"
            lines.append(f"complete -c bacon {cond} {spec}{value} -d {fish_quote(a.help or '')}")
    return f"""# fish completion for bacon(1).
# Generated by packaging/deb/gen_docs.py from shim.operator.cli.build_parser().
function __bacon_subs
    switch $argv[1]
{chr(10).join(subs_cases)}
    end
end
function __bacon_valued
    switch $argv[1]
{chr(10).join(valued_cases)}
    end
end
function __bacon_path
    set -l path
    set -l skip 0
    for w in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case '-*=*'
            case '-*'
                contains -- $w (string split -- ' ' (__bacon_valued "$path")) ; and set skip 1
            case '*'
                contains -- $w (string split -- ' ' (__bacon_subs "$path")) ; and set -a path $w
        end
    end
    echo "$path"
end
complete -c bacon -f
{chr(10).join(lines)}
"""


def completion(root: Node) -> str:
    """A static bash completion: the verb path typed so far picks the words and options offered."""
    cases: list[str] = []

    def visit(node: Node) -> None:
        key = " ".join(node.path[1:])
        opts = ["--help"] + [s for a in options(node.parser) for s in a.option_strings]
        with_value = [s for a in options(node.parser) if takes_value(a) for s in a.option_strings]
        subs = [c.path[-1] for c in node.children]
        cases.append(f'        "{key}") words="{shell_words(subs)}"; opts="{shell_words(opts)}"; '
                     f'valued="{shell_words(with_value)}"; values="{shell_words(positional_values(node))}" ;;')
        for action in options(node.parser):
            if not takes_value(action):
                continue
            for flag in action.option_strings:
                if action.choices:
                    values = shell_words([str(c) for c in action.choices])
                    value_cases.append(f'        "{key}|{flag}") COMPREPLY=($(compgen -W "{values}" -- "$cur")) ;;')
                elif action.metavar in ("FILE", "SOCKET"):
                    value_cases.append(f'        "{key}|{flag}") COMPREPLY=($(compgen -f -- "$cur")) ;;')
                elif action.metavar == "DIR":
                    value_cases.append(f'        "{key}|{flag}") COMPREPLY=($(compgen -d -- "$cur")) ;;')
        for child in node.children:
            visit(child)

    value_cases: list[str] = []
    visit(root)
    return f"""# bash completion for bacon(1).
# Generated by packaging/deb/gen_docs.py from shim.operator.cli.build_parser().
_bacon() {{
    local cur prev words opts valued values path="" i w skip=0
    cur=${{COMP_WORDS[COMP_CWORD]}}
    prev=${{COMP_WORDS[COMP_CWORD-1]}}
    # The verb path typed so far: words that name a sub-command, options and their values skipped.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        if ((skip)); then skip=0; continue; fi
        _bacon_table "$path"
        case "$w" in
            -*=*) ;;
            -*) [[ " $valued " == *" $w "* ]] && skip=1 ;;
            *) [[ " $words " == *" $w "* ]] && path=${{path:+$path }}$w ;;
        esac
    done
    _bacon_table "$path"
    if ((skip)); then
        COMPREPLY=()
        case "$path|$prev" in
{chr(10).join(value_cases)}
        esac
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words $values" -- "$cur"))
    fi
}}
_bacon_table() {{
    words=""; opts=""; valued=""; values=""
    case "$1" in
{chr(10).join(cases)}
    esac
}}
complete -F _bacon bacon
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    ap.add_argument("--python-path", required=True, help="where the shim package to document is")
    ap.add_argument("--man-dir", required=True, type=Path)
    ap.add_argument("--completion", required=True, type=Path, help="the bash completion to write")
    ap.add_argument("--zsh-completion", type=Path, help="the zsh completion (_bacon) to write")
    ap.add_argument("--fish-completion", type=Path, help="the fish completion (bacon.fish) to write")
    ap.add_argument("--date", default=time.strftime("%Y-%m-%d", time.gmtime()))
    args = ap.parse_args()
    sys.path.insert(0, args.python_path)
    from shim import __version__
    from shim.operator.cli import build_parser

    root = walk(build_parser(), ["bacon"])
    args.man_dir.mkdir(parents=True, exist_ok=True)
    (args.man_dir / "bacon.1").write_text(main_page(root, args.date, __version__))
    for child in root.children:
        (args.man_dir / f"bacon-{child.path[-1]}.1").write_text(verb_page(root, child, args.date, __version__))
    args.completion.parent.mkdir(parents=True, exist_ok=True)
    args.completion.write_text(completion(root))
    for target, render in ((args.zsh_completion, zsh_completion), (args.fish_completion, fish_completion)):
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
