"""A griffe extension for the API reference: Sphinx roles in docstrings become links.

camerapump's docstrings cross-reference with Sphinx roles (``:class:`Output```,
``:meth:`Pump.record <camerapump.Pump.record>```), which Markdown would show
as they are.  Once the package is loaded, each role is rewritten to an optional
mkdocs-autorefs reference: a link where the target is on the reference page,
plain code where it is not (private modules, names the page does not render),
so a reference never fails the strict build.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|obj|exc):`([^`]+)`")
TITLED = re.compile(r"(?s)(.*?)\s*<([^>]+)>")


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` in every docstring of the package to an autorefs link."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings once the whole package is loaded."""
        public = {name for name in pkg.members if not name.startswith("_")}
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = ROLE.sub(
                    lambda m, obj=obj: _link(m.group(1), obj, pkg.name, public),
                    obj.docstring.value,
                )


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found += _walk(member)  # type: ignore[arg-type]
    return found


def _link(text: str, obj: griffe.Object, package: str, public: set[str]) -> str:
    titled = TITLED.fullmatch(text)
    title, target = (titled.group(1), titled.group(2)) if titled else (None, text)
    short = target.startswith("~")
    target = target.lstrip("~.")
    if title is None:
        title = target.rsplit(".", 1)[-1] if short else target
    identifier = _resolve(target, obj, package, public)
    code = html.escape(title)
    if identifier is None:
        return f"<code>{code}</code>"
    return f'<code><autoref identifier="{identifier}" optional>{code}</autoref></code>'


def _resolve(target: str, obj: griffe.Object, package: str, public: set[str]) -> str | None:
    """The public path of ``target`` as seen from ``obj``, or None (not on the page)."""
    if target.startswith(package + "."):
        target = target[len(package) + 1 :]
    head = target.split(".", 1)[0]
    if head in public:
        return f"{package}.{target}"
    # A member of the class (or of the class's class) the docstring belongs to.
    owner: griffe.Object | None = obj
    while owner is not None:
        if owner.is_class and owner.name in public:
            return f"{package}.{owner.name}.{target}"
        owner = owner.parent  # type: ignore[assignment]
    return None
