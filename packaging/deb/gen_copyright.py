"""Write ``/usr/share/doc/bacon/copyright`` (machine-readable format 1.0) for the package as built.

BACON itself is Apache-2.0. The Python libraries bundled in ``/usr/lib/bacon/python`` each get a
paragraph with their version, the licence their metadata declares and the full text of the licence files
their wheel ships (``*.dist-info/licenses/`` or ``LICENSE*``), so the file stays right when a dependency
changes.

usage: gen_copyright.py BUNDLE_DIR OUT_FILE
"""

from __future__ import annotations

import re
import sys
from email.parser import HeaderParser
from pathlib import Path

HEADER = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bacon
Comment: BACON, an admission layer in front of nerdctl. The Python libraries it needs are bundled
 in /usr/lib/bacon/python (Debian's own are too old for its generated gRPC code); each has a
 paragraph below, with the licence files its wheel ships.

Files: *
Copyright: 2026 BACON maintainers
License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
 compliance with the License.
 .
 Unless required by applicable law or agreed to in writing, software distributed under the License is
 distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or
 implied. See the License for the specific language governing permissions and limitations under the
 License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0 can be found in
 "/usr/share/common-licenses/Apache-2.0".
"""

# The Apache License 2.0's terms, as many licence files carry them: Debian has them in common-licenses.
# From the title to the end of section 9 (and the END line, which some copies leave out).
APACHE_TERMS = re.compile(r"^[ \t]*Apache License\s+Version 2\.0, January 2004.*?"
                          r"(?:additional liability\.(?:\s*END OF TERMS AND CONDITIONS)?"
                          r"|END OF TERMS AND CONDITIONS)[ \t]*$",
                          re.DOTALL | re.MULTILINE)
APACHE_POINTER = "[The terms of the Apache License, Version 2.0: see /usr/share/common-licenses/Apache-2.0.]"


def declared_license(meta: dict[str, str], classifiers: list[str]) -> str:
    expr = meta.get("License-Expression", "").strip()
    if expr:
        return expr
    osi = [c.split("::")[-1].strip() for c in classifiers if c.startswith("License ::")]
    if osi:
        return " or ".join(osi)
    text = meta.get("License", "").strip()
    return text.split("\n", 1)[0][:80] if text else "see the licence text below"


def as_field_body(text: str) -> str:
    lines = text.expandtabs().rstrip().split("\n")
    return "\n".join(" " + line.rstrip() if line.strip() else " ." for line in lines)


def license_texts(dist_info: Path) -> list[Path]:
    found = sorted(p for p in (dist_info / "licenses").rglob("*") if p.is_file())
    if not found:
        found = sorted(p for p in dist_info.iterdir()
                       if p.is_file() and p.name.upper().startswith(("LICEN", "COPYING")))
    return found


def read_licence(path: Path) -> str:
    return APACHE_TERMS.sub(APACHE_POINTER, path.read_text(encoding="utf-8", errors="replace"))


def paragraph(bundle: Path, dist_info: Path) -> str:
    msg = HeaderParser().parsestr((dist_info / "METADATA").read_text(encoding="utf-8"))
    meta = {k: str(v) for k, v in msg.items()}
    name, version = meta["Name"], meta["Version"]
    tops = sorted({line.split(",", 1)[0].split("/", 1)[0] for line in
                   (dist_info / "RECORD").read_text(encoding="utf-8").splitlines() if line})
    files = " ".join(f"usr/lib/bacon/python/{t}/*" if (bundle / t).is_dir() else f"usr/lib/bacon/python/{t}"
                     for t in tops if t != dist_info.name)
    licence = declared_license(meta, msg.get_all("Classifier") or [])
    texts = license_texts(dist_info)
    body = "\n\n".join(f"{p.relative_to(dist_info)}:\n\n{read_licence(p)}" for p in texts)
    body = body or "No licence text shipped; see the project's metadata."
    author = meta.get("Author", "") or meta.get("Author-email", "") or meta.get("Maintainer", "") or name
    return (f"Files: {files} usr/lib/bacon/python/{dist_info.name}/*\n"
            f"Copyright: the {name} authors ({' '.join(author.split())})\n"
            f"Comment: {name} {version}, bundled from its wheel.\n"
            f"License: {' '.join(licence.split())}\n{as_field_body(body)}\n")


def main() -> int:
    bundle, out = Path(sys.argv[1]), Path(sys.argv[2])
    paragraphs = [HEADER]
    for dist_info in sorted(bundle.glob("*.dist-info")):
        if dist_info.name.startswith("bacon_shim-"):
            continue
        paragraphs.append(paragraph(bundle, dist_info))
    out.write_text("\n".join(paragraphs), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
